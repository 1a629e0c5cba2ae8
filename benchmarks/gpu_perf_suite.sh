#!/usr/bin/env bash
# The performance suite of benchmarks/ on one CUDA GPU, in under five minutes:
#   1. training-step throughput, ours vs diffusers' twin U-Net, fp32 / bf16 / channels_last /
#      torch.compile, memory and share of the matmul peak   (train_throughput.py, ≤ 80 s)
#   2. time to quality in sampling: 1,000 samples, our fast samplers vs DDPMPipeline's 1,000 steps
#      (sampling_time_to_quality.py, ≤ 80 s with compilation)
#   3. time to quality in training: our demo recipe vs diffusers' unconditional-training example,
#      BUDGET minutes each (training_time_to_quality.py, ≤ 130 s at the default 0.6)
# Each stage has its own time limit and log; a failed stage does not stop the next. Results go to
# benchmarks/results/*_cuda.{json,md} and, with the logs, into OUT/results.tgz.
# Run from the repository root:  OUT=folder bash benchmarks/gpu_perf_suite.sh
# DEVICE=cpu with small settings checks the plumbing without a GPU (not a measurement), e.g.
#   DEVICE=cpu COMPILE= BATCH=8 REPEATS=1 NUM=100 BUDGET=0.1 OUT=/tmp/x bash benchmarks/gpu_perf_suite.sh
set -u
OUT=${OUT:-gpu-results}
DEVICE=${DEVICE:-cuda}
BUDGET=${BUDGET:-0.6}
NUM=${NUM:-1000}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
WORK=$(mktemp -d)
SUITE_START=$SECONDS
TAIL=12

. benchmarks/stages.sh

if [ "$DEVICE" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
fi
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

stage train_throughput 80 $PY benchmarks/train_throughput.py --device "$DEVICE" ${COMPILE---compile} \
    --batch-size "${BATCH:-256}" --repeats "${REPEATS:-5}"
stage sampling_time_to_quality 80 $PY benchmarks/sampling_time_to_quality.py --device "$DEVICE" \
    --num "$NUM" --batch-size "$NUM" --repeats 2
stage training_time_to_quality 130 $PY benchmarks/training_time_to_quality.py --device "$DEVICE" \
    --budget-minutes "$BUDGET" --arms ours,diffusers --num 500 --compile off  # a compile would eat the budget
echo "== suite: $((SECONDS - SUITE_START)) s"
