"""Nothing a run saved is lost: refusals (export over a run, a second writer, nothing left to train,
damaged resume state) exit with one line on stderr and leave every file byte-identical."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import ddpm
from ddpm.checkpoints import RunLock
from ddpm.cli.main import main
from ddpm.errors import UserError

from .helpers import snapshot_tree

FLAGS = "--config digits-tiny --train.steps 8 --train.checkpoint_every 4 --train.sample_every 0"
TINY = [*FLAGS.split(), "--train.log_every", "2", "--train.precision", "fp32", "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("safety") / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    return out


@pytest.fixture
def run(trained, tmp_path):
    """A copy of the trained run (checkpoints at steps 4 and 8), free to damage."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


def _refused(capsys, argv, folder, *expected):
    before = snapshot_tree(folder)
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    for text in expected:
        assert text in err, err
    assert snapshot_tree(folder) == before
    return err


def _resume(run, steps="12"):
    return ["train", "--out", str(run), "--resume", "--train.steps", steps, "--no-progress"]


# -- export ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target, says",
    [
        ("checkpoints/step-0000008", "is a training checkpoint"),  # the very checkpoint exported
        ("checkpoints/step-0000004", "is a training checkpoint"),  # another one of the run
        ("checkpoints/exported", "the checkpoints of a training run"),
        ("checkpoints", "the checkpoints of a training run"),
        (".", "is a training run folder"),
    ],
)
def test_export_never_writes_into_a_training_run(run, capsys, target, says):
    _refused(capsys, ["export", str(run), "--out", str(run / target)], run, says)


def test_export_beside_the_run_still_works(run, tmp_path, capsys):
    assert main(["export", str(run), "--out", str(tmp_path / "small")]) == 0
    assert (tmp_path / "small" / "ema.safetensors").is_file()


# -- nothing left to train -----------------------------------------------------------------------------


@pytest.mark.parametrize("steps", ["8", "5"])
def test_resume_to_a_step_already_reached_is_refused(run, capsys, steps):
    _refused(capsys, _resume(run, steps), run, "already at step 8", "above 8")


# -- damaged resume state ------------------------------------------------------------------------------


def _edit_state(run, change):
    path = run / "checkpoints" / "step-0000008" / "checkpoint.json"
    meta = json.loads(path.read_text())
    change(meta["state"])
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "change, says",
    [
        (lambda s: s.update(step="eight"), "state.step is 'eight'"),
        (lambda s: s.pop("rng_train"), "state.rng_train is missing"),
        (lambda s: s.update(rng_torch="AAAA"), "state.rng_torch is not a random-generator state"),
        (lambda s: s.update(rng_train="not base64!"), "state.rng_train is not a random-generator state"),
    ],
    ids=["step", "rng-missing", "rng-short", "rng-not-base64"],
)
def test_a_damaged_checkpoint_state_names_the_file_and_the_earlier_checkpoint(run, capsys, change, says):
    _edit_state(run, change)
    _refused(
        capsys,
        _resume(run),
        run,
        says,
        str(run / "checkpoints" / "step-0000008" / "checkpoint.json") + " is damaged",
        "resume from the earlier checkpoint step-0000004",
    )


def test_a_damaged_state_without_an_earlier_checkpoint_says_to_start_anew(run, capsys):
    shutil.rmtree(run / "checkpoints" / "step-0000004")
    _edit_state(run, lambda s: s.update(step=None))
    _refused(capsys, _resume(run), run, "no earlier checkpoint exists; start a new run")


@pytest.mark.parametrize(
    "text, says",
    [
        ("{ not json", "Expecting property name"),
        ('{"model": {"base_chanels": 3}}', "base_chanels"),
        ("[1]", ""),
    ],
)
def test_a_damaged_run_config_names_the_file(run, capsys, text, says):
    (run / "config.json").write_text(text)
    _refused(
        capsys,
        _resume(run),
        run,
        says,
        f"{run / 'config.json'} is damaged",
        f'the "config" entry of {run / "checkpoints" / "step-0000008" / "checkpoint.json"}',
    )


# -- one writer per run folder ---------------------------------------------------------------------------


def test_a_second_lock_in_the_same_process_is_refused(tmp_path):
    first = RunLock(tmp_path / "run").acquire()
    with pytest.raises(UserError, match=f"in use by process {os.getpid()} on host {socket.gethostname()}"):
        RunLock(tmp_path / "run").acquire()
    first.release()
    assert not (tmp_path / "run" / "train.lock").exists()
    RunLock(tmp_path / "run").acquire().release()


def _hold_lock(folder):
    """A process holding the lock on ``folder`` until killed."""
    code = (
        "import sys; from ddpm.checkpoints import RunLock; RunLock(sys.argv[1]).acquire(); "
        "print('locked', flush=True); sys.stdin.read()"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(ddpm.__file__).parents[1])}
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(folder)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_writer_is_refused_naming_the_holder_and_a_dead_holder_is_taken_over(run, tmp_path, capsys):
    holder = _hold_lock(run)
    fresh = tmp_path / "fresh"
    fresh_holder = _hold_lock(fresh)
    try:
        who = f"in use by process {holder.pid} on host {socket.gethostname()}"
        _refused(capsys, _resume(run), run, who)  # --resume while the run trains
        _refused(capsys, ["train", *TINY, "--out", str(fresh)], fresh, f"process {fresh_holder.pid}")
    finally:
        for p in (holder, fresh_holder):
            p.send_signal(signal.SIGKILL)
            p.wait()
    assert json.loads((run / "train.lock").read_text())["pid"] == holder.pid  # stale: its holder is dead
    assert main(_resume(run)) == 0
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-0000012"
    assert not (run / "train.lock").exists()
