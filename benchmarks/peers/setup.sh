#!/usr/bin/env bash
# Build the separate virtualenv for the peer training arms (k-diffusion, denoising-diffusion-pytorch).
# Keeps the CPU torch 2.13.0 build: torch is pinned both on the command line and as a constraint,
# and torchvision (pulled in by both peers) is pinned to 0.28.0, the release built against torch 2.13.
# Usage: bash benchmarks/peers/setup.sh            (creates /work/main/.venv-peers; re-running is safe)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv-peers"
PY="$VENV/bin/python"

[ -x "$PY" ] || python3.11 -m venv "$VENV"

constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
printf 'torch==2.13.0\ntorchvision==0.28.0\nsetuptools==80.10.2\n' > "$constraints"

# setuptools stays below 81 because k-diffusion's clip-anytorch imports pkg_resources (removed in 81);
# torch 2.13 itself wants setuptools>=77.0.3. The other pins are the versions this was verified with.
"$PY" -m pip install --quiet -c "$constraints" \
    torch==2.13.0 torchvision==0.28.0 setuptools==80.10.2 \
    k-diffusion==0.1.1.post1 denoising-diffusion-pytorch==2.3.4 \
    numpy==1.26.4 pillow==13.0.0 safetensors==0.8.0 scipy==1.17.1 tqdm==4.70.1

# PyPI's torchvision 0.28.0 wheel is built for CUDA torch: its C++ ops (_C.so) need libtorch_cuda, so
# they cannot load next to the CPU torch, and two of its fake-op registrations (nms, qnms) then fail
# at import ("operator torchvision::nms does not exist"). Neither peer uses torchvision's C++ ops (only
# transforms/utils), so guard those two registrations the way torchvision guards its other ones.
# Idempotent, and a no-op where the ops do load.
site="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
sed -i -E 's/^@torch\.library\.register_fake\(("torchvision::q?nms")\)$/@(torch.library.register_fake(\1) if torchvision.extension._has_ops() else (lambda fn: fn))/' \
    "$site/torchvision/_meta_registrations.py"

version="$("$PY" -c 'import torch; print(torch.__version__)')"
if [ "$version" != "2.13.0+cpu" ]; then
    echo "setup.sh: expected torch 2.13.0+cpu in $VENV, found $version" >&2
    exit 1
fi
PYTHONPATH="$ROOT/src" "$PY" -W ignore -c '
import k_diffusion, denoising_diffusion_pytorch, torch
from ddpm.data import load_fashion_mnist
from ddpm.models import UNet
assert not torch.cuda.is_available()
print("peers venv ready: torch", torch.__version__, "| k-diffusion and denoising-diffusion-pytorch import")
'
