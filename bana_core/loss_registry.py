"""The stage-3 loss registry: one entry per loss is all a new loss needs.

An entry says what the loss is, which settings it reads, how to build it from them, and which
tables it appears in; the experiment lists (``bana_core.experiments``), the segmenter-name
pattern, the tables' rows and the test-set archives follow from it; ``bana_core.losses.build_loss``
builds one. Without torch: the Snakefile reads the registry when it plans the jobs.
"""

from __future__ import annotations

from dataclasses import dataclass

from .classes import IGNORE_INDEX
from .errors import ConfigError

# Every loss accepts the whole stage-3 settings dict (these keys); each keeps the keys it reads.
PARAMS = {"temperature": 20.0, "lam": 0.1, "damp": 7.0, "detach_sigma": False, "beta": 0.95,
          "ignore_index": IGNORE_INDEX}


@dataclass(frozen=True)
class LossSpec:
    """One loss.

    ``build``: the name of a function in ``bana_core.losses`` that takes the validated settings
    (``PARAMS``' keys) and returns ``fn(cosine, y_crf, y_ret) -> (total, parts)``; it reads
    ``reads`` of them. (A name, not the function: the plan reads this registry without torch, and
    an edit to the loss code reruns only what trains or scores with it.) ``table5`` / ``table7``: its row label in
    Table 5 (both architectures) / Table 7 (DeepLab-V1), or None; a loss in either table is
    trained, scored and tabled, and with ``test`` also predicted on the test images. Rows follow
    the registry's order.
    """

    description: str
    build: str
    reads: tuple[str, ...]
    table5: str | None = None
    table7: str | None = None
    test: bool = False


_T, _IGN = "temperature", "ignore_index"
# In the tables' row order: Table 5 ce_crf, ce_ret, nal, ce_gt; Table 7 baseline, er, bootstrap, nal.
LOSSES: dict[str, LossSpec] = {
    "ce_crf": LossSpec("CE on Y_crf (Table 5 'w/ Ycrf')", "build_ce_crf", (_T, _IGN), table5="w/ Ycrf"),
    "ce_ret": LossSpec("CE on Y_ret (Table 5 'w/ Yret')", "build_ce_ret", (_T, _IGN), table5="w/ Yret"),
    "baseline": LossSpec("CE on S only (Table 7 'Baseline')", "build_baseline", (_T, _IGN), table7="Baseline"),
    "er": LossSpec("CE on S + entropy regularisation on ~S (Table 7)", "build_entropy_regularized", (_T, "lam", _IGN),
                   table7="w/ Entropy Regularization"),
    "bootstrap": LossSpec("CE on S + soft bootstrapping on ~S (Table 7)", "build_bootstrapping",
                          (_T, "lam", "beta", _IGN), table7="w/ Bootstrapping"),
    "nal": LossSpec("noise-aware loss, CE on S + lambda * L_wce on ~S (Eq. 12)", "build_noise_aware",
                    (_T, "lam", "damp", "detach_sigma", _IGN), table5="w/ NAL", table7="w/ Lwce", test=True),
    # the same segmenter and recipe trained on the ground truth (the trainer passes it as both
    # labels): the reference box-supervised papers judge against ("x % of full supervision")
    "ce_gt": LossSpec("CE on the ground truth (Table 5 'full supervision')", "build_ce_crf", (_T, _IGN),
                      table5="full supervision"),
}


def losses_in(table: str) -> tuple[str, ...]:
    """The losses with a row in ``table`` ('table5' or 'table7'), in row order."""
    return tuple(name for name, spec in LOSSES.items() if getattr(spec, table) is not None)


def validate_params(params: dict) -> dict:
    """``PARAMS`` updated with ``params``, each checked; ConfigError names a wrong one."""
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise ConfigError(f"unknown loss parameter(s) {unknown}; valid: {sorted(PARAMS)}")
    p = {**PARAMS, **params}
    checks = {
        "temperature": p["temperature"] > 0,
        "lam": p["lam"] >= 0,
        "damp": p["damp"] >= 0,
        "beta": 0 <= p["beta"] <= 1,
        "detach_sigma": isinstance(p["detach_sigma"], bool),
    }
    for key, ok in checks.items():
        if not ok:
            raise ConfigError(f"loss parameter {key!r} has an invalid value {p[key]!r}")
    return p
