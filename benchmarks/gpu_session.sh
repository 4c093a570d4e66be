#!/usr/bin/env bash
# Every check that needs a GPU, in stages that each fit one device call (10 minutes at most).
# Device time is scarce and a machine left idle is taken back within a minute, so run the stages
# back to back, most important first; logs and result rows land in $OUT.
#
#   OUT=/some/dir bash benchmarks/gpu_session.sh STAGE [STAGE ...]
#
#   env          nvidia-smi, torch/triton/python versions               (seconds)
#   tests        the whole suite with the kernels running natively        (~3-6 min, 8 workers)
#   gpu-tests    `pytest -m gpu`: realistic sizes vs torch, bf16 train/resume
#   kernels      every kernel benchmark (benchmarks/run_all.py)           (split it if it runs long:
#   matmul attention softmax layernorm cross_entropy elementwise embedding adamw   one each)
#   train-ours   the shakespeare-char preset with our engine              (benchmarks/bench_train_run.py)
#   train-torch  the same run in torch eager                              (the wall-time baseline)
#   train-torch-compile  the same run with torch.compile
#   train-step   one GPT-2 124M / tinystories / shakespeare-char step vs torch eager and compile
#   graph        GPT-2 124M, 40 steps with --cuda_graph=true then =false: same val losses (bf16
#                noise), ms/iter of each (docs/perf-notes.md section 7's CUDA-graph checks); and
#                shakespeare-char (dropout 0.2) for 200 steps each way: close val losses, ms/iter
#
# Results: benchmarks/results/*.json (copied into $OUT); commit them with the tables in
# docs/BENCHMARKS.md. Data: copy ../shared/data into the ignored .gpu_carry/data, carry
# .gpu_carry, and set MINIGRAD_DATA=.gpu_carry/data (tests and train stages read it).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export PYTHONPATH=. PYTHONUNBUFFERED=1
# Triton's compile cache inside the repo's ignored .gpu_carry: kept between calls on a warm machine.
export TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-$PWD/.gpu_carry/triton-cache}
DATA=${MINIGRAD_DATA:-../shared/data}
KERNELS="matmul attention softmax layernorm cross_entropy elementwise embedding adamw"

stage() {          # stage NAME COMMAND...: run, log to $OUT/NAME.txt, record the exit code
    local name=$1; shift
    local t0=$SECONDS
    "$@" 2>&1 | tee "$OUT/$name.txt"
    local rc=${PIPESTATUS[0]}
    echo "$name: exit $rc ($((SECONDS - t0)) s)" | tee -a "$OUT/summary.txt"
    cp benchmarks/results/*.json "$OUT/" 2>/dev/null
    return 0
}

[ $# -gt 0 ] || { sed -n '2,20p' "$0"; exit 2; }
for s in "$@"; do
    case $s in
        env) stage env bash -c 'nvidia-smi; python --version; python -c "import torch, triton, numpy; \
print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"triton\", triton.__version__, \
\"numpy\", numpy.__version__, torch.cuda.get_device_name())"' ;;
        # the GPU machine may lack pytest-xdist and hypothesis: no -n there, and the few modules
        # that import hypothesis fail to collect without stopping the rest
        tests) stage tests python -m pytest -q -p no:cacheprovider --continue-on-collection-errors \
            $(python -c "import xdist" 2>/dev/null && echo "-n 8") --durations=15 ;;
        gpu-tests) stage gpu-tests python -m pytest -q -p no:cacheprovider -m gpu --durations=15 ;;
        kernels) stage kernels python -m benchmarks.run_all --only $KERNELS ;;
        matmul|attention|softmax|layernorm|cross_entropy|elementwise|embedding|adamw)
            stage "bench-$s" python -m "benchmarks.bench_$s" ;;
        train-ours) stage train-ours python -m benchmarks.bench_train_run --impl=ours \
            --preset=shakespeare-char --data="$DATA/tinyshakespeare.txt" ;;
        train-torch) stage train-torch python -m benchmarks.bench_train_run --impl=torch \
            --preset=shakespeare-char --data="$DATA/tinyshakespeare.txt" ;;
        train-torch-compile) stage train-torch-compile python -m benchmarks.bench_train_run \
            --impl=torch-compile --preset=shakespeare-char --data="$DATA/tinyshakespeare.txt" ;;
        train-step) stage train-step python -m benchmarks.bench_train ;;
        graph) for g in true false; do
                   stage "graph-$g" python -m benchmarks.bench_train_run --impl=ours --no_write \
                       --preset=gpt2-124m --data="$DATA/tinyshakespeare.txt" --gpt2_dir="$DATA/gpt2" \
                       --max_iters=40 --eval_interval=20 --eval_iters=5 --cuda_graph=$g
                   # shakespeare-char trains with dropout 0.2: the graph redraws masks per replay
                   # (device seed offset), so val losses agree statistically, not bit for bit
                   stage "graph-sc-$g" python -m benchmarks.bench_train_run --impl=ours --no_write \
                       --preset=shakespeare-char --data="$DATA/tinyshakespeare.txt" \
                       --max_iters=200 --eval_interval=100 --eval_iters=20 --cuda_graph=$g
               done ;;
        *) echo "unknown stage $s (see the list at the top of $0)"; exit 2 ;;
    esac
done
cat "$OUT/summary.txt"
