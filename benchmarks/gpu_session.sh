#!/usr/bin/env bash
# Kept as a thin alias: the GPU check is benchmarks/gpu_check.py, one call of at most 8 minutes
# (env, kernels vs the NumPy spec, GPT-2 eager vs CUDA graph vs torch, shakespeare-char dropout
# graph vs eager, matmul/attention vs cuBLAS/SDPA), results streamed to $OUT. A lent GPU gives 15
# minutes of device time in all, so the old stages (the whole test suite, four cold training runs)
# could not fit; the kernel benchmarks are still run one by one (python -m benchmarks.bench_matmul,
# ...) and the GPU-marked tests with `pytest -m gpu`. See docs/BENCHMARKS.md.
#
#   python -m benchmarks.gpu_check --prepare            # before the call: data into .gpu_carry/
#   OUT=/some/dir bash benchmarks/gpu_session.sh [ARGS] # == python -m benchmarks.gpu_check --out=$OUT ARGS
set -uo pipefail
cd "$(dirname "$0")/.."
PY=$(command -v python3 || command -v python)
exec "$PY" -m benchmarks.gpu_check --out="${OUT:-gpu-check-out}" "$@"
