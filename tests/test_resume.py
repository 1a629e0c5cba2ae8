"""A killed or interrupted run, resumed, ends with the same weights as one that never stopped."""

import json
import os
import signal
import sys

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from ddpm.checkpoints import read_tensors
from ddpm.training import train
from ddpm.training import trainer as trainer_module

from .helpers import digits_images, tiny_run

STEPS = 12


def _settings():
    # cosine lr, dropout and flips exercise every piece of restored state
    # fp32 everywhere: "auto" would pick bf16 on CPUs where it is native
    return dict(
        steps=STEPS,
        batch_size=16,
        checkpoint_every=4,
        lr_schedule="cosine",
        hflip=True,
        warmup_steps=3,
        precision="fp32",
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


def _assert_identical(a, b):
    for group in a:
        assert a[group].keys() == b[group].keys()
        for k in a[group]:
            assert torch.equal(a[group][k], b[group][k]), (group, k)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """Pins one thread itself: a module fixture is set up before the autouse one-thread fixture,
    and two thread counts round differently on some CPUs."""
    out = tmp_path_factory.mktemp("straight")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(_run_with_dropout(), digits_images(), out, progress=False)
    finally:
        torch.set_num_threads(threads)
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


# -- a signal at any point of a step: the run stops at a step boundary and resumes bit for bit --------


def _kill_self(signum):
    os.kill(os.getpid(), signum)


def _signal_after_c_calls(n, signum, name):
    """A profile function that sends ``signum`` when the ``n``-th call of the C function or method
    ``name`` returns, i.e. in the middle of the Python code being profiled, then switches itself off."""
    count = [0]

    def profile(frame, event, arg):
        if event == "c_return" and getattr(arg, "__name__", None) == name:
            count[0] += 1
            if count[0] == n:
                sys.setprofile(None)
                _kill_self(signum)

    return profile


def _between_steps(monkeypatch, at, signum):
    original = trainer_module._Loop._train_step

    def step(self):
        if self.step == at:
            _kill_self(signum)
        return original(self)

    monkeypatch.setattr(trainer_module._Loop, "_train_step", step)
    return monkeypatch.undo


def _after_the_random_draws(monkeypatch, at, signum):
    original, calls = trainer_module.training_noise, []

    def noise(*args, **kwargs):
        drawn = original(*args, **kwargs)
        calls.append(1)
        if len(calls) == at + 1:
            _kill_self(signum)
        return drawn

    monkeypatch.setattr(trainer_module, "training_noise", noise)
    return monkeypatch.undo


def _inside_optimizer_step(monkeypatch, at, signum):
    """Half-way through optimiser step ``at`` (Adam's moments are updated with ``lerp_``, twice per
    parameter): ten parameters updated, the others not."""
    calls = []

    def pre_hook(optimizer, args, kwargs):
        calls.append(1)
        if len(calls) == at + 1:
            sys.setprofile(_signal_after_c_calls(20, signum, "lerp_"))

    handle = register_optimizer_step_pre_hook(pre_hook)

    def undo():
        handle.remove()
        sys.setprofile(None)

    return undo


def _inside_ema_update(monkeypatch, at, signum):
    """After the EMA weights are folded in, before the step counter moves."""
    original, calls = trainer_module.EMA.update, []

    def update(self, model, step):
        calls.append(1)
        if len(calls) == at + 1:
            sys.setprofile(_signal_after_c_calls(1, signum, "_foreach_lerp_"))
        try:
            return original(self, model, step)
        finally:
            sys.setprofile(None)

    monkeypatch.setattr(trainer_module.EMA, "update", update)
    return monkeypatch.undo


@pytest.mark.parametrize(
    "arm, at, signum",
    [
        (_between_steps, 5, signal.SIGTERM),
        (_after_the_random_draws, 6, signal.SIGTERM),
        (_after_the_random_draws, 9, signal.SIGINT),
        (_inside_optimizer_step, 6, signal.SIGTERM),
        (_inside_optimizer_step, 2, signal.SIGINT),
        (_inside_ema_update, 6, signal.SIGTERM),
        (_inside_ema_update, 10, signal.SIGINT),
    ],
    ids=lambda v: getattr(v, "__name__", getattr(v, "name", str(v))).strip("_"),
)
def test_a_signal_anywhere_in_a_step_saves_a_whole_step(
    tmp_path, monkeypatch, uninterrupted, arm, at, signum
):
    undo = arm(monkeypatch, at, signum)
    try:
        with pytest.raises(KeyboardInterrupt):
            train(_run_with_dropout(), digits_images(), tmp_path, progress=False)
    finally:
        undo()
    # the step in progress (0-based ``at``) was finished, saved, and nothing after it was started
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == f"step-{at + 1:07d}"
    train(_run_with_dropout(), digits_images(), tmp_path, resume=True, progress=False)
    _assert_identical(_final(tmp_path), uninterrupted)


def test_a_second_ctrl_c_aborts_without_saving_after_saying_so(tmp_path, monkeypatch, capfd, uninterrupted):
    original, calls = trainer_module.training_noise, []

    def noise(*args, **kwargs):
        drawn = original(*args, **kwargs)
        calls.append(1)
        if len(calls) == 7:  # inside step 6 (0-based): the last checkpoint is step 4
            _kill_self(signal.SIGINT)
            _kill_self(signal.SIGINT)
        return drawn

    monkeypatch.setattr(trainer_module, "training_noise", noise)
    with pytest.raises(KeyboardInterrupt):
        train(_run_with_dropout(), digits_images(), tmp_path, progress=False)
    monkeypatch.undo()
    assert "second interrupt" in capfd.readouterr().err
    assert [p.name for p in (tmp_path / "checkpoints").glob("step-*")] == ["step-0000004"]
    train(_run_with_dropout(), digits_images(), tmp_path, resume=True, progress=False)
    _assert_identical(_final(tmp_path), uninterrupted)


# -- what a kill leaves behind is cleaned on resume ---------------------------------------------------


def test_resume_removes_temporaries_and_ends_the_log_at_the_checkpoint(tmp_path, monkeypatch):
    _fail_at(monkeypatch, 7, RuntimeError("power cut"))  # log has step 5, checkpoint is step 4
    with pytest.raises(RuntimeError):
        train(_run_with_dropout(), digits_images(), tmp_path, progress=False)
    monkeypatch.undo()
    ckpts = tmp_path / "checkpoints"
    (ckpts / ".step-0000008.k1ll3d").mkdir()  # a checkpoint write killed before its rename
    (ckpts / ".step-0000008.k1ll3d" / "model.safetensors").write_bytes(b"half")
    (ckpts / ".step-0000004.old").mkdir()  # a replacement killed between its two renames
    with (tmp_path / "log.jsonl").open("a") as f:
        f.write('{"step": 6, "lo')  # a log line cut short
    train(_run_with_dropout(), digits_images(), tmp_path, resume=True, progress=False)
    assert sorted(p.name for p in ckpts.iterdir()) == [
        "latest",
        "step-0000004",
        "step-0000008",
        "step-0000012",
    ]
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [5, 10, 12]
