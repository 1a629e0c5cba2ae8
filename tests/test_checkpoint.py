"""Checkpoints are written atomically; bad ones fail with one clear error."""

import json

import pytest
import torch

from ddpm.checkpoints import CheckpointDir, read_meta, read_tensors, write_checkpoint
from ddpm.checkpoints import files as ckpt
from ddpm.errors import UserError
from ddpm.pipelines import load_model
from ddpm.training import train

from .helpers import digits_images, tiny_run


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_round_trip(tmp_path):
    tensors = {
        "model": {"w": torch.randn(3, 4), "b": torch.zeros(2)},
        "optimizer": {"0.step": torch.tensor(7.0)},
    }
    write_checkpoint(tmp_path / "c", tensors, {"kind": "test", "state": {"step": 3}})
    assert read_meta(tmp_path / "c")["state"]["step"] == 3
    assert torch.equal(read_tensors(tmp_path / "c", "model")["w"], tensors["model"]["w"])


def test_a_failed_write_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    write_checkpoint(tmp_path / "c", {"model": {"w": torch.ones(2)}}, {"state": {"step": 1}})
    before = _snapshot(tmp_path)
    calls = []

    def failing_save(tensors, path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        torch.save(tensors, path)  # never reached for the second file

    monkeypatch.setattr(ckpt, "save_file", failing_save)
    with pytest.raises(OSError):
        write_checkpoint(tmp_path / "c", {"model": {"w": torch.zeros(2)}, "ema": {"w": torch.zeros(2)}}, {})
    assert _snapshot(tmp_path) == before  # no temp folder left, nothing replaced


def test_latest_pointer_falls_back_to_newest_complete(tmp_path):
    d = CheckpointDir(tmp_path)
    d.save(2, {"model": {"w": torch.ones(1)}}, {}, keep=5)
    d.save(4, {"model": {"w": torch.ones(1)}}, {}, keep=5)
    (d.root / "latest").write_text("step-0000099\n")  # points at something gone
    (d.root / "step-0000006").mkdir()  # an incomplete folder: no checkpoint.json
    assert d.latest().name == "step-0000004"


def test_keeps_only_the_last_k(tmp_path):
    d = CheckpointDir(tmp_path)
    for step in range(1, 6):
        d.save(step, {"model": {"w": torch.ones(1)}}, {}, keep=2)
    assert [p.name for p in d.complete()] == ["step-0000004", "step-0000005"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train(tiny_run(steps=4, checkpoint_every=4), digits_images(64), out, progress=False)
    return out / "checkpoints" / "step-0000004"


def _copy(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_loads(trained):
    loaded = load_model(trained, device="cpu")
    assert loaded.meta["state"]["step"] == 4 and not loaded.model.training


def test_corrupt_weights(trained, tmp_path):
    bad = _copy(trained, tmp_path / "bad")
    (bad / "ema.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(UserError, match="corrupt"):
        load_model(bad)


def test_corrupt_json(trained, tmp_path):
    bad = _copy(trained, tmp_path / "bad")
    (bad / "checkpoint.json").write_text("{ not json")
    with pytest.raises(UserError, match="corrupt"):
        load_model(bad)


def test_configuration_that_does_not_match_the_weights(trained, tmp_path):
    bad = _copy(trained, tmp_path / "bad")
    meta = json.loads((bad / "checkpoint.json").read_text())
    meta["config"]["model"]["base_channels"] = 32
    (bad / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="do not match"):
        load_model(bad)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_model(tmp_path / "nowhere")
    with pytest.raises(UserError, match="holds no checkpoint"):
        load_model(tmp_path)


@pytest.mark.parametrize("native_bf16", [False, True])
def test_channels_last_inference_gives_the_same_samples(native_bf16, monkeypatch):
    """The same samples either way, in fp32 (pinned: on a CPU with native bf16, precision auto would
    sample in bf16, whose rounding differs between the two layouts)."""
    import ddpm.runtime
    from ddpm.pipelines import generate
    from ddpm.samplers import SamplerConfig

    monkeypatch.setattr(ddpm.runtime, "bf16_is_fast", lambda device: native_bf16)
    assert ddpm.runtime.resolve_precision("auto", torch.device("cpu")) == ("bf16" if native_bf16 else "fp32")
    sampler = SamplerConfig(sampler="ddim", steps=3)
    nchw = load_model("fashion-mnist", device="cpu", channels_last=False)
    nhwc = load_model("fashion-mnist", device="cpu")  # the CPU default

    def conv_weight(loaded):
        convs = (m for m in loaded.model.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
        return next(convs).weight

    assert conv_weight(nhwc).is_contiguous(memory_format=torch.channels_last)
    assert not conv_weight(nchw).is_contiguous(memory_format=torch.channels_last)
    a = generate(nchw, 4, seed=1, sampler=sampler, precision="fp32", progress=False).images
    b = generate(nhwc, 4, seed=1, sampler=sampler, precision="fp32", progress=False).images
    assert b.is_contiguous()
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
