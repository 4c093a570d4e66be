#!/usr/bin/env bash
# Everything that needs a GPU, in one call (device time is scarce): the whole test suite with
# the kernels running natively, the realistic-size `gpu` tests, then every benchmark.
# Logs and result rows land in $OUT (default gpu-results/); commit benchmarks/results/*.json
# and the tables in docs/BENCHMARKS.md afterwards.
#
#   OUT=/some/dir bash benchmarks/gpu_session.sh [--quick]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export PYTHONPATH=.
{ nvidia-smi; python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"; } \
    > "$OUT/env.txt" 2>&1
python -m pytest -q -p no:cacheprovider > "$OUT/pytest.txt" 2>&1; echo "pytest: exit $?" | tee -a "$OUT/summary.txt"
python -m pytest -q -p no:cacheprovider -m gpu > "$OUT/pytest-gpu.txt" 2>&1; echo "pytest -m gpu: exit $?" | tee -a "$OUT/summary.txt"
python -m benchmarks.run_all "$@" > "$OUT/benchmarks.txt" 2>&1; echo "benchmarks: exit $?" | tee -a "$OUT/summary.txt"
cp benchmarks/results/*.json "$OUT/" 2>/dev/null
tail -n 3 "$OUT/pytest.txt" "$OUT/pytest-gpu.txt" "$OUT/benchmarks.txt"
