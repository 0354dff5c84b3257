"""Which config a run gets, through the Snakemake command line (dry runs only).

The demo (config/config.yaml) is the default only without --configfile; a user's file is
validated on its own, so a key it forgets is an error, never the demo's value.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from workflow_env import copy_workflow, snakemake


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("config_cli"))


def write_config(work: Path, name: str, edit) -> str:
    config = yaml.safe_load((work / "tiny.yaml").read_text())
    edit(config)
    (work / name).write_text(yaml.safe_dump(config))
    return name


def test_a_missing_required_key_names_the_key_and_the_file(work):
    # The demo has stage1.iterations: 500; a user config without it must not run with that.
    name = write_config(work, "no_iterations.yaml", lambda c: c["stage1"].pop("iterations"))
    proc = snakemake(work, "-n", configfile=name, check=False)
    assert proc.returncode != 0
    err = proc.stdout + proc.stderr
    assert f"Configuration error in {work / name}:" in err
    assert "config key 'stage1.iterations' is required but missing" in err


def test_a_user_config_is_not_merged_over_the_demo(work):
    # The tiny config leaves pretrain.threads out: the schema's default fills it, not the demo's
    # value; a dry run prints each job's threads.
    name = write_config(work, "user.yaml", lambda c: c.update(run="user"))
    out = snakemake(work, "-n", "results/user/pretrain/vgg/backbone.pt", configfile=name).stdout
    assert "results/user/pretrain/vgg/backbone.pt" in out
    # The demo's pretrain.threads is 2; the schema's default is null (= train_threads, 1 here).
    assert "threads: 2" not in out


def test_without_configfile_the_demo_is_the_config(work):
    out = snakemake(work, "-n", "results/demo/pretrain/vgg/backbone.pt", configfile=None).stdout
    assert "results/demo/pretrain/vgg/backbone.pt" in out
    assert "threads: 2" in out  # the demo's pretrain.threads


@pytest.mark.slow
def test_the_paper_config_stands_on_its_own(work):
    out = snakemake(work, "-n", configfile="config/voc2012.yaml").stdout
    assert "train_segmenter" in out and "results/voc2012/" in out


def test_the_paper_config_plans_test_set_jobs_only_with_the_test_archive(work):
    # voc_test_archive: null as shipped (the test images need a login): no voc_test, no archive
    out = snakemake(work, "-n", configfile="config/voc2012.yaml").stdout
    assert "rule voc_test:" not in out and "rule archive_test:" not in out
    assert "eval_test.json" not in out
    paper = yaml.safe_load((work / "config" / "voc2012.yaml").read_text())
    paper["dataset"]["voc_test_archive"] = "VOC2012test.tar"
    (work / "paper_with_test.yaml").write_text(yaml.safe_dump(paper))
    out = snakemake(work, "-n", configfile="paper_with_test.yaml").stdout
    assert "rule voc_test:" in out and "rule archive_test:" in out


def test_a_key_given_twice_in_the_configfile_is_refused(work):
    text = (work / "tiny.yaml").read_text() + "\nseed: 3\n"  # tiny.yaml already sets seed
    (work / "twice.yaml").write_text(text)
    proc = snakemake(work, "-n", configfile="twice.yaml", check=False)
    assert proc.returncode != 0
    assert "twice.yaml" in proc.stderr + proc.stdout and "'seed' appears twice" in proc.stderr + proc.stdout


def test_a_resources_block_naming_no_rule_is_refused_before_any_job(work):
    # a typo would otherwise leave train_segmenter at its demo size, killed by SLURM hours later
    name = write_config(work, "typo_resources.yaml",
                        lambda c: c.update(resources={"train_segmentr": {"mem_mb": 16000, "runtime": 1440}}))
    proc = snakemake(work, "-n", configfile=name, check=False)
    assert proc.returncode != 0
    err = proc.stdout + proc.stderr
    assert f"Configuration error in {work / name}: resources: the workflow has no rule train_segmentr" in err


def test_a_resources_entry_takes_only_memory_and_time(work):
    name = write_config(work, "bad_resources.yaml", lambda c: c.update(resources={"train_segmenter": {"gpus": 2}}))
    proc = snakemake(work, "-n", configfile=name, check=False)
    assert proc.returncode != 0
    assert "resources.train_segmenter" in proc.stdout + proc.stderr
