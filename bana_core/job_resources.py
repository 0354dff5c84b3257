"""Each job's memory and time limit (`mem_mb`, `runtime` in minutes: SLURM's --mem and -t).

A rule states sizes that fit the demo; a config's `resources` block replaces them per rule (the
paper's sizes are in config/voc2012.yaml). Both grow with Snakemake's `attempt`, so a retry after an
out-of-memory kill or a time-out asks for twice, then three times as much, instead of failing the
same way again.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from bana_core.errors import ConfigError

KEYS = ("mem_mb", "runtime")


def scaled_by_attempt(value: int) -> Callable[..., int]:
    """A Snakemake resource callable: ``value`` on the first attempt, ``value * n`` on the n-th."""
    def resource(wildcards, attempt: int) -> int:
        return int(value) * int(attempt)
    return resource


def job_resources(config: Mapping, rule: str, **defaults: int) -> dict[str, Callable[..., int]]:
    """``rule``'s resources: its ``defaults`` (mem_mb, runtime) updated by ``config['resources'][rule]``,
    each scaled by the attempt."""
    unknown = set(defaults) - set(KEYS)
    if unknown:
        raise ValueError(f"rule {rule}: job_resources takes {', '.join(KEYS)}, not {', '.join(sorted(unknown))}")
    values = {**defaults, **(config.get("resources") or {}).get(rule, {})}
    return {key: scaled_by_attempt(value) for key, value in values.items()}


def check_overrides(config: Mapping, rules: Iterable[str]) -> None:
    """Refuse a `resources` block naming a rule the workflow does not have (a typo would otherwise
    leave the rule at its demo size and its job killed hours later)."""
    known = set(rules)
    unknown = sorted(set(config.get("resources") or {}) - known)
    if unknown:
        raise ConfigError(f"resources: the workflow has no rule {', '.join(unknown)} "
                          f"(its rules: {', '.join(sorted(known))})")
