"""Job memory / time limits: the rule's demo sizes, the config's per-rule sizes, times the attempt."""
from __future__ import annotations

import pytest

from bana_core.errors import ConfigError
from bana_core.job_resources import check_overrides, job_resources, scaled_by_attempt


def evaluate(resources: dict, attempt: int) -> dict:
    return {key: fn(None, attempt) for key, fn in resources.items()}


def test_a_retry_asks_for_attempt_times_the_first_size():
    fn = scaled_by_attempt(16000)
    assert [fn({}, attempt) for attempt in (1, 2, 3)] == [16000, 32000, 48000]


def test_the_config_replaces_the_rules_sizes_key_by_key():
    config = {"resources": {"train_segmenter": {"runtime": 1440}}}
    sized = job_resources(config, "train_segmenter", mem_mb=2000, runtime=60)
    assert evaluate(sized, 1) == {"mem_mb": 2000, "runtime": 1440}
    assert evaluate(sized, 2) == {"mem_mb": 4000, "runtime": 2880}
    # another rule, and a config without the block, keep the rule's own sizes
    assert evaluate(job_resources(config, "predict_segmenter", mem_mb=2000, runtime=30), 1) == \
        {"mem_mb": 2000, "runtime": 30}
    assert evaluate(job_resources({"resources": {}}, "x", mem_mb=1000, runtime=5), 3) == {"mem_mb": 3000, "runtime": 15}


def test_a_rule_may_only_size_memory_and_time():
    with pytest.raises(ValueError, match="rule x: job_resources takes mem_mb, runtime, not gpu"):
        job_resources({}, "x", gpu=1)


def test_a_resources_key_naming_no_rule_is_refused_with_the_rules_listed():
    check_overrides({"resources": {"train_segmenter": {"mem_mb": 1}}}, ["train_segmenter", "predict_segmenter"])
    with pytest.raises(ConfigError, match=r"no rule train_segmentr \(its rules: predict_segmenter, train_segmenter\)"):
        check_overrides({"resources": {"train_segmentr": {"mem_mb": 1}}}, ["train_segmenter", "predict_segmenter"])
