"""Where and how tensors run: device choice, numeric precision (autocast), graph compilation,
thread settings."""

from __future__ import annotations

import contextlib

import torch

from ddpm.errors import UserError

PRECISIONS = ("auto", "fp32", "bf16")
COMPILE_MODES = ("auto", "on", "off")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; otherwise the named device, checked to exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    return device


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bf16 has native kernels here (CUDA with bf16, or a CPU with AVX-512 BF16 / AMX).

    Without them, CPU bf16 is emulated and can be ten times slower than fp32.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` → bf16 where it is native (see :func:`bf16_is_fast`), else fp32."""
    if name not in PRECISIONS:
        raise UserError(f"unknown precision {name!r}; choose one of {', '.join(PRECISIONS)}")
    if name == "auto":
        return "bf16" if bf16_is_fast(device) else "fp32"
    return name


def autocast(precision: str, device: torch.device):
    """Autocast context for a resolved precision (a no-op for fp32)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def resolve_compile(name: str, device: torch.device) -> bool:
    """Whether to ``torch.compile`` the network: ``auto`` → on CUDA only.

    On CUDA, kernel fusion removes most launches of a small U-Net's many elementwise ops. On a CPU
    the measured gain is no more than channels_last's (``benchmarks/cpu_fast_path.py --compile``,
    ``train_throughput.py``) while a first compile takes about a minute, so it is opt-in there
    (``on``), and it needs a C++ compiler.
    """
    if name not in COMPILE_MODES:
        raise UserError(f"unknown compile setting {name!r}; choose one of {', '.join(COMPILE_MODES)}")
    enabled = device.type == "cuda" if name == "auto" else name == "on"
    if enabled and device.type == "cpu":
        import shutil

        if not any(shutil.which(cc) for cc in ("c++", "g++", "clang++")):
            raise UserError("torch.compile on a CPU needs a C++ compiler (install g++) or use compile off")
    return enabled


def compiled(module: torch.nn.Module, enabled: bool) -> torch.nn.Module:
    """``torch.compile(module)`` when ``enabled`` (compiled lazily, at the first call), else ``module``.

    The compiled wrapper shares parameters with ``module``; save and load through ``module`` itself.
    """
    return torch.compile(module) if enabled else module


def set_threads(num_threads: int) -> None:
    """Use ``num_threads`` intra-op threads when > 0 (0 leaves PyTorch's default)."""
    if num_threads > 0:
        torch.set_num_threads(num_threads)


def progress_bar(iterable=None, *, enabled: bool = True, **kwargs):
    """A tqdm bar that shows on terminals and stays silent in logs and pipes (or when disabled)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=None if enabled else True, dynamic_ncols=True, **kwargs)
