#!/usr/bin/env bash
# GPU readiness in one run, under 8 minutes on one GPU:
#   1. tests/test_gpu.py (marker gpu): CPU vs CUDA for the BAP head, pseudo labels, NAL, training
#      steps with fp16 autocast, stage-2 features, the GPU allocator; none may skip;
#   2. the whole workflow with `device: cuda` on a private copy, with the tiny config
#      (tests/data/tiny_config.yaml: every rule, every table, 141 jobs); the GPU allocator hands
#      the GPU to one job at a time (about 70 GPU jobs) while CPU jobs run beside them; checks
#      every table is written and the jobs' logs name the GPU they leased.
#      GPU_CHECK_CONFIG=config/config.yaml runs the demo instead (17 min on 2 CPU cores; its
#      length on a GPU has not been measured: it may not fit in the 8 minutes);
#   3. the benchmarks on CUDA (channels_last.py, pseudo_labels.py, bap_head.py, nal.py), each
#      against its baseline in the same run.
# Time limits (s): tests 90, workflow 240, benchmarks 35 + 45 + 25 + 25: 460 s at most.
# Logs and a summary go to OUT_DIR (default: $OUT if set, else results/gpu_check).
#
#   benchmarks/gpu_check.sh [OUT_DIR]
#
# Exit status: 0 all passed, 1 a step failed, 2 no CUDA device visible (nothing checked).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR=${1:-${OUT:-$ROOT/results/gpu_check}}
PY=${PYTHON:-python}
CORES=${GPU_CHECK_CORES:-8}
CONFIG=${GPU_CHECK_CONFIG:-tests/data/tiny_config.yaml}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
SUMMARY="$OUT_DIR/summary.txt"
: > "$SUMMARY"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA device visible to $PY (torch.cuda.is_available() is false): nothing checked" | tee -a "$SUMMARY"
    exit 2
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, '|',
    ', '.join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())))" | tee -a "$SUMMARY"

failed=0
# step NAME LIMIT_S COMMAND...: run with a time limit, log to OUT_DIR/NAME.log, record the outcome
step() {
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS rc
    timeout "$limit" "$@" > "$OUT_DIR/$name.log" 2>&1
    rc=$?
    local took=$((SECONDS - t0))
    if [ $rc -eq 0 ]; then
        printf '%-14s ok      %4d s\n' "$name" "$took" | tee -a "$SUMMARY"
    else
        [ $rc -eq 124 ] && echo "(killed after ${limit} s)" >> "$OUT_DIR/$name.log"
        printf '%-14s FAILED  %4d s (exit %d, see %s)\n' "$name" "$took" "$rc" "$OUT_DIR/$name.log" | tee -a "$SUMMARY"
        tail -n 20 "$OUT_DIR/$name.log"
        failed=1
    fi
    return $rc
}

# 1. the gpu tests; a skip here means a test did not run where it should
cd "$ROOT" || exit 1
if step tests 90 "$PY" -m pytest -q -m gpu -rs -p no:cacheprovider tests/test_gpu.py; then
    if grep -q "skipped" "$OUT_DIR/tests.log"; then
        echo "tests          FAILED  some gpu tests were skipped on a CUDA machine" | tee -a "$SUMMARY"
        failed=1
    fi
fi
grep -E "passed|failed|skipped" "$OUT_DIR/tests.log" | tail -n 1 | tee -a "$SUMMARY"

# 2. the workflow with device: cuda, on a private copy (the checkout stays clean)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bana-gpu-check.XXXXXX")
for name in Snakefile rules workflow_scripts config report bana_core; do
    cp -r "$ROOT/$name" "$WORK/"
done
cp "$ROOT/$CONFIG" "$WORK/check.yaml"
run=$("$PY" -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['run'])" "$WORK/check.yaml")
cd "$WORK" || exit 1
if step workflow 240 env PYTHONPATH="$WORK" BANA_GPU_LOCK_DIR="$WORK/gpu-locks" \
        "$PY" -m snakemake --cores "$CORES" --configfile check.yaml --config device=cuda; then
    n_tables=$(find "results/$run/tables" -type f 2>/dev/null | wc -l)
    n_leases=$(grep -rl --include="*.log" "GPU lease: device" "results/$run/logs" 2>/dev/null | wc -l)
    echo "workflow: $n_tables table files, $n_leases job logs with a GPU lease (results/$run)" | tee -a "$SUMMARY"
    if [ "$n_tables" -eq 0 ] || [ "$n_leases" -eq 0 ]; then
        echo "workflow       FAILED  no tables or no job ran on the GPU" | tee -a "$SUMMARY"
        failed=1
    fi
fi
cd "$ROOT" || exit 1
rm -rf "$WORK"

# 3. the benchmarks on CUDA; each prints its headline number last
step bench_channels_last 35 "$PY" benchmarks/channels_last.py --device cuda --repeats 5 --threads "$CORES"
tail -n 1 "$OUT_DIR/bench_channels_last.log" | tee -a "$SUMMARY"
step bench_pseudo_labels 45 "$PY" benchmarks/pseudo_labels.py --device cuda --repeats 3 --threads "$CORES"
tail -n 1 "$OUT_DIR/bench_pseudo_labels.log" | tee -a "$SUMMARY"
step bench_bap_head 25 "$PY" benchmarks/bap_head.py --device cuda --repeats 3 --threads "$CORES"
tail -n 1 "$OUT_DIR/bench_bap_head.log" | tee -a "$SUMMARY"
step bench_nal 25 "$PY" benchmarks/nal.py --device cuda --repeats 3 --threads "$CORES"
tail -n 1 "$OUT_DIR/bench_nal.log" | tee -a "$SUMMARY"

echo "total $SECONDS s; logs in $OUT_DIR" | tee -a "$SUMMARY"
exit $failed
