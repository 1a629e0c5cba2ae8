"""A killed or interrupted run, resumed, ends with the same weights as one that never stopped."""

import pytest
import torch

from ddpm.checkpoints import read_tensors
from ddpm.training import train
from ddpm.training import trainer as trainer_module

from .helpers import digits_images, tiny_run

STEPS = 12


def _settings():
    # cosine lr, dropout and flips exercise every piece of restored state
    return dict(
        steps=STEPS, batch_size=16, checkpoint_every=4, lr_schedule="cosine", hflip=True, warmup_steps=3
    )


def _run_with_dropout():
    run = tiny_run(**_settings())
    run.model.dropout = 0.2
    run.full_config["model"]["dropout"] = 0.2
    return run


def _final(path):
    ckpt = sorted((path / "checkpoints").glob("step-*"))[-1]
    return {name: read_tensors(ckpt, name) for name in ("model", "ema", "optimizer")}


def _assert_same(a, b):
    for group in a:
        assert a[group].keys() == b[group].keys()
        for k in a[group]:
            assert torch.allclose(a[group][k], b[group][k], rtol=1e-6, atol=1e-7), (group, k)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    train(_run_with_dropout(), digits_images(), out, progress=False)
    return _final(out)


def _fail_at(monkeypatch, step, exc):
    original = trainer_module._Loop._train_step

    def failing(self):
        if self.step == step:
            raise exc
        return original(self)

    monkeypatch.setattr(trainer_module._Loop, "_train_step", failing)


def test_crash_then_resume_from_last_periodic_checkpoint(tmp_path, monkeypatch, uninterrupted):
    _fail_at(monkeypatch, 7, RuntimeError("power cut"))
    with pytest.raises(RuntimeError):
        train(_run_with_dropout(), digits_images(), tmp_path, progress=False)
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step-0000004"
    monkeypatch.undo()
    train(_run_with_dropout(), digits_images(), tmp_path, resume=True, progress=False)
    _assert_same(_final(tmp_path), uninterrupted)


def test_ctrl_c_saves_and_resumes(tmp_path, monkeypatch, uninterrupted):
    _fail_at(monkeypatch, 5, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        train(_run_with_dropout(), digits_images(), tmp_path, progress=False)
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step-0000005"
    monkeypatch.undo()
    train(_run_with_dropout(), digits_images(), tmp_path, resume=True, progress=False)
    _assert_same(_final(tmp_path), uninterrupted)


def test_same_seed_same_weights_other_seed_different(tmp_path, uninterrupted):
    train(_run_with_dropout(), digits_images(), tmp_path / "a", progress=False)
    _assert_same(_final(tmp_path / "a"), uninterrupted)
    run = _run_with_dropout()
    run.train.seed = 1
    run.full_config["train"]["seed"] = 1
    train(run, digits_images(), tmp_path / "b", progress=False)
    other = _final(tmp_path / "b")
    assert not torch.allclose(other["model"]["out_conv.weight"], uninterrupted["model"]["out_conv.weight"])
