"""What a finished run took and showed, regenerated from its files (README's demo numbers).

``python -m bana_core.run_summary results/demo --snakemake-log .snakemake/log --data-logs
data/logs/synthetic`` prints
the commit, the wall time (first to last timestamp of Snakemake's log), the job time per stage
(sum of the rules' ``benchmark:`` files, so two jobs at once count twice), that of each further
seed (``seeds/<s>/``, with its data's logs) and the headline numbers of the tables, as Markdown
that README quotes verbatim.
"""

from __future__ import annotations

import argparse
import re
import subprocess
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pandas as pd

from .seeds import SEEDS_FOLDER, seed_dataset_name, seed_run_dir

# Benchmark file name (under <run>/benchmarks, or the dataset's log folder) -> stage, first match wins.
STAGES = (
    ("dataset", r"^(synthesize|build_train_aug|box_masks|download_.*|voc_test)\.benchmark$"),
    ("pretraining set", r"^pretrain_set$"),
    ("pretraining", r"^(pretrain|shipped_backbone)_(vgg|resnet)$"),
    ("stage 1: training", r"^train_classifier_"),
    ("stage 1: scoring", r"^eval_classifier_"),
    ("stage 2: merges", r"_merge$"),
    ("stage 2: pseudo labels", r"^pseudo_labels/"),
    ("VOC-to-COCO", r"^coco/"),
    ("stage 3: training", r"^train_segmenter_"),
    ("stage 3: prediction", r"^predict_"),
    ("stage 3: CRF", r"^crf_"),
    ("scoring, curves, tables, report", r"."),
)
_LOG_TIME = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")


def stage_of(name: str) -> str:
    return next(stage for stage, pattern in STAGES if re.search(pattern, name))


def job_seconds(run_dir: Path, data_logs: Path | None = None) -> dict[str, tuple[int, float]]:
    """Stage -> (jobs, seconds) from the benchmark files of a run (and of its dataset)."""
    files = [(str(p.relative_to(run_dir / "benchmarks").with_suffix("")), p)
             for p in sorted((run_dir / "benchmarks").rglob("*.tsv"))]
    if data_logs is not None and data_logs.is_dir():
        files += [(p.name[: -len(".tsv")], p) for p in sorted(data_logs.glob("*.benchmark.tsv"))]
    out: dict[str, list] = defaultdict(lambda: [0, 0.0])
    for name, path in files:
        seconds = float(pd.read_csv(path, sep="\t")["s"].iloc[-1])
        stage = stage_of(name)
        out[stage][0] += 1
        out[stage][1] += seconds
    return {stage: (out[stage][0], out[stage][1]) for stage, _ in STAGES if stage in out}


def _log_times(log: Path) -> list[datetime]:
    return [datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
            for line in log.read_text().splitlines() if (m := _LOG_TIME.match(line.strip()))]


def wall_seconds(snakemake_log: Path) -> float:
    """First to last timestamp of a Snakemake log (the whole run when the log is of one run).

    Given a folder (``.snakemake/log``), the log with the most job timestamps: the run itself, not
    the report's nested ``snakemake --report``, which logs no job."""
    snakemake_log = Path(snakemake_log)
    if snakemake_log.is_dir():
        logs = sorted(snakemake_log.glob("*.snakemake.log"))
        if not logs:
            raise ValueError(f"{snakemake_log}: no Snakemake logs")
        times = max((_log_times(p) for p in logs), key=len)
    else:
        times = _log_times(snakemake_log)
    if len(times) < 2:
        raise ValueError(f"{snakemake_log}: no job timestamps")
    return (max(times) - min(times)).total_seconds()


def commit(repo: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def summary(run_dir: Path, *, snakemake_log: Path | None = None, data_logs: Path | None = None,
            repo: Path | None = None) -> str:
    run_dir = Path(run_dir)
    lines = [f"Run `{run_dir}` at commit `{commit(repo or run_dir)}`."]  # the checkout the run lies in
    if snakemake_log is not None:
        lines.append(f"Wall time: **{wall_seconds(snakemake_log) / 60:.1f} min** (Snakemake's log, first to last job).")
    stages = job_seconds(run_dir, data_logs)
    if stages:
        total_jobs = sum(n for n, _ in stages.values())
        total = sum(s for _, s in stages.values())
        lines += ["", f"Job time by stage ({total_jobs} jobs, {total:.0f} s in all; jobs run side by side count "
                      "each):", "", "| stage | jobs | s |", "|---|---|---|"]
        lines += [f"| {stage} | {n} | {s:.0f} |" for stage, (n, s) in stages.items()]
    further = sorted(int(p.name) for p in (run_dir / SEEDS_FOLDER).glob("*") if p.name.isdigit())
    if further:  # a run with several seeds (bana_core.seeds): each further seed's own folder and data
        lines += ["", "| further seed | jobs | s |", "|---|---|---|"]
        for seed in further:
            seed_logs = None if data_logs is None else data_logs.parent / seed_dataset_name(data_logs.name, seed)
            seed_stages = job_seconds(Path(seed_run_dir(run_dir, seed)), seed_logs).values()
            lines.append(f"| {seed} | {sum(n for n, _ in seed_stages)} | {sum(s for _, s in seed_stages):.0f} |")
    tables = run_dir / "tables"
    for name in ("health_checks", "table3_pseudo_labels", "table5_segmentation", "table7_losses", "claims"):
        md = tables / f"{name}.md"
        if md.exists():
            lines += ["", md.read_text().strip()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--snakemake-log", type=Path,
                        help="the run's .snakemake/log/<time>.snakemake.log, or the folder (the run's log is found)")
    parser.add_argument("--data-logs", type=Path, help="the dataset's log folder (data/logs/<name>)")
    args = parser.parse_args(argv)
    print(summary(args.run_dir, snakemake_log=args.snakemake_log, data_logs=args.data_logs), end="")


if __name__ == "__main__":
    main()
