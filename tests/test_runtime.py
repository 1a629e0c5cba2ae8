"""Runtime choices: which precision and whether to compile, and that a compiled network computes
what the eager one does (in a training step and in sampling)."""

import shutil

import pytest
import torch

import ddpm.runtime
from ddpm.errors import UserError
from ddpm.runtime import bf16_is_fast, resolve_compile, resolve_precision
from ddpm.training import TrainConfig, train

from .helpers import assert_weights_close, digits_images, final_weights, tiny_run
from .test_distributed import ARGS

CPU = torch.device("cpu")


def test_precision_auto_follows_native_bf16(monkeypatch):
    assert resolve_precision("auto", CPU) == ("bf16" if bf16_is_fast(CPU) else "fp32")
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(ddpm.runtime, "bf16_is_fast", lambda device, native=native: native)
        assert resolve_precision("auto", CPU) == expected
        assert resolve_precision("fp32", CPU) == "fp32"
    assert resolve_precision("bf16", CPU) == "bf16"
    with pytest.raises(UserError, match="unknown precision"):
        resolve_precision("fp16", CPU)


def test_compile_is_opt_in_on_a_cpu_and_needs_a_compiler(monkeypatch):
    assert resolve_compile("auto", CPU) is False
    assert resolve_compile("off", CPU) is False
    assert resolve_compile("auto", torch.device("cuda")) is True
    with pytest.raises(UserError, match="unknown compile"):
        resolve_compile("yes", CPU)
    with pytest.raises(ValueError, match="unknown compile"):
        TrainConfig(compile="yes")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="C\\+\\+ compiler"):
        resolve_compile("on", CPU)


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("c++") and not shutil.which("g++"), reason="needs a C++ compiler")
def test_compiled_training_and_sampling_match_eager(tmp_path, monkeypatch):
    """torch.compile changes how, not what: the same weights after a few steps, the same samples.

    Compared in fp32, pinned: bf16 rounds differently in fused kernels. The CPU is made to look
    bf16-native, so that nothing here runs at a precision chosen by the machine."""
    from ddpm.pipelines import generate, load_model
    from ddpm.samplers import SamplerConfig

    monkeypatch.setattr(ddpm.runtime, "bf16_is_fast", lambda device: True)
    eager_dir, compiled_dir = tmp_path / "eager", tmp_path / "compiled"
    train(tiny_run(**ARGS, precision="fp32"), digits_images(), eager_dir, progress=False)
    train(tiny_run(**ARGS, precision="fp32", compile="on"), digits_images(), compiled_dir, progress=False)
    assert_weights_close(final_weights(compiled_dir), final_weights(eager_dir), tol=1e-4)

    loaded = load_model(eager_dir, device="cpu")
    sampler = SamplerConfig(sampler="ddim", steps=5)
    eager = generate(loaded, 8, sampler=sampler, precision="fp32", compile="off", progress=False).images
    fast = generate(loaded, 8, sampler=sampler, precision="fp32", compile="on", progress=False).images
    assert torch.allclose(fast, eager, atol=1e-4)
