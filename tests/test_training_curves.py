"""``ddpm plot``: training curves from a run's log, resumed steps counted once."""

import json
import shutil
from dataclasses import replace

import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ddpm.cli.main import main
from ddpm.cli.plot import smoothed
from ddpm.training import train
from ddpm.training.run_log import read_log

from .helpers import digits_images, tiny_run


def _write_log(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_a_resumed_step_counts_once_and_the_later_record_wins(tmp_path):
    log = tmp_path / "log.jsonl"
    records = [{"step": s, "loss": 1.0 / s, "lr": 1e-3} for s in (10, 20, 30)]
    records += [{"step": 30, "loss": 0.5, "lr": 1e-3}, {"step": 40, "loss": 0.2, "lr": 1e-3}]
    _write_log(log, records)
    with log.open("a") as f:
        f.write('{"step": 50, "loss": 0.1')  # a line cut short by a kill
    series = read_log(log)
    assert [s for s, _ in series["loss"]] == [10, 20, 30, 40]
    assert dict(series["loss"])[30] == 0.5


def test_smoothing_is_a_debiased_moving_average():
    assert smoothed([2.0, 2.0, 2.0], 0.9) == [2.0, 2.0, 2.0]  # a constant stays put from the start
    s = smoothed([0.0, 1.0], 0.5)
    assert s[1] == (0.5 * 0.5 * 0.0 + 0.5 * 1.0) / (1 - 0.25)


def test_plot_writes_one_panel_per_series(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    records = [
        {"step": s, "loss": 1 / s, "lr": 1e-3, "grad_norm": 1.0, "d_loss": 0.7, "elapsed_seconds": s}
        for s in range(1, 30)
    ]
    _write_log(run / "log.jsonl", records)
    assert main(["plot", str(run)]) == 0
    out = capsys.readouterr().out
    assert "d_loss" in out and "elapsed_seconds" not in out
    with Image.open(run / "curves.png") as image:
        assert image.size[0] > 500


def test_plot_of_a_folder_without_a_log_is_one_line(tmp_path, capsys):
    assert main(["plot", str(tmp_path)]) != 0
    assert "no log.jsonl" in capsys.readouterr().err
    assert not (tmp_path / "curves.png").exists()


def test_tensorboard_events_mirror_the_log_and_a_resume_replaces_its_repeated_steps(tmp_path):

    run = tiny_run(
        steps=10, batch_size=8, log_every=5, checkpoint_every=5, keep_checkpoints=0, tensorboard=True
    )
    out = tmp_path / "run"
    train(run, digits_images(64), out, progress=False)
    shutil.rmtree(out / "checkpoints" / "step-0000010")  # resume from step 5: step 10 is trained again
    (out / "checkpoints" / "latest").write_text("step-0000005\n")
    run.train = replace(run.train, steps=15)
    train(run, digits_images(64), out, resume=True, progress=False)
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    steps = [e.step for e in events.Scalars("train/loss")]
    assert steps == [5, 10, 15]
    logged = {s: v for s, v in read_log(out / "log.jsonl")["loss"]}
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx([logged[s] for s in steps])
