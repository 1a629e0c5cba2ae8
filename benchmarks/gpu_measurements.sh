#!/usr/bin/env bash
# The sample-heavy measurements, on one CUDA GPU, in under ten minutes:
#   1. a smoke test (tiny train + sample on the GPU),
#   2. `ddpm eval` of the shipped Fashion-MNIST model (domain metrics on 10,000 samples, NLL on
#      1,000 test images) and 1,000 saved samples for FID on a machine with the Inception weights,
#   3. the sampler sweep (benchmarks/sampler_nfe.py, 1,000 samples per point),
#   4. the class-conditional Fashion-MNIST model (configs/fashion-mnist-class.toml),
#   5. its guidance sweep (benchmarks/guidance_sweep.py).
# Each stage has its own time limit and log; a failed stage does not stop the next.
# Run from the repository root: OUT=folder bash benchmarks/gpu_measurements.sh
# FID of the saved image sets afterwards, where the Inception weights are installed:
#   python benchmarks/sampler_nfe_fid.py OUT/nfe_sets.npz
#   ddpm eval fashion-mnist --metrics fid,kid --samples OUT/eval_samples.npz
set -u
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
WORK=$(mktemp -d)

. benchmarks/stages.sh

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

stage smoke 60 bash -c "$PY -m ddpm train --config digits-tiny --out $WORK/smoke --train.steps 20 \
    --train.device cuda --no-progress && $PY -m ddpm sample $WORK/smoke --device cuda --num 8 \
    --out $WORK/smoke.png --no-progress"

stage eval 100 $PY -m ddpm eval fashion-mnist --device cuda --metrics fd-domain,pr,classes,nll \
    --num 10000 --nll-num 1000 --batch-size 1000 --no-progress --out "$WORK/eval_fashion_mnist_gpu.json"
stage eval_samples 40 $PY -m ddpm eval fashion-mnist --device cuda --metrics classes --num 1000 \
    --batch-size 1000 --no-progress --save-samples "$OUT/eval_samples.npz"

stage nfe 150 $PY benchmarks/sampler_nfe.py --device cuda --num 1000 --batch-size 1000 \
    --save-images "$OUT/nfe_sets.npz"

stage train_class 170 $PY -m ddpm train --config fashion-mnist-class --out "$WORK/class" \
    --train.device cuda --no-progress
$PY -m ddpm export "$WORK/class" --out "$WORK/fashion-mnist-class" >/dev/null 2>&1 &&
    tar -C "$WORK" -czf "$OUT/fashion_mnist_class.tgz" fashion-mnist-class class/log.jsonl class/samples

stage guidance 80 $PY benchmarks/guidance_sweep.py "$WORK/fashion-mnist-class" --device cuda \
    --per-class 100 --batch-size 1000 --save-images "$OUT/guidance_sets.npz"

ls -la "$OUT"
