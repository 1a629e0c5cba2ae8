"""Every bad input is a one-line error with a non-zero exit, and leaves every file as it was."""

import dataclasses
import math
import typing

import pytest
from PIL import Image

from ddpm.cli.main import main
from ddpm.data import DataConfig
from ddpm.models import UNetConfig
from ddpm.process import DiffusionConfig
from ddpm.samplers import SamplerConfig
from ddpm.training import TrainConfig
from ddpm.validation import InvalidValue
from tests.helpers import snapshot_tree

CONFIGS = (TrainConfig, UNetConfig, DiffusionConfig, DataConfig, SamplerConfig)
TRAIN = ["train", "--config", "digits-tiny", "--train.steps", "2", "--no-progress"]


def _numeric_fields():
    for cls in CONFIGS:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if hints[f.name] in (int, float):
                yield pytest.param(cls, f.name, hints[f.name], id=f"{cls.__name__}.{f.name}")


@pytest.mark.parametrize("cls, name, tp", list(_numeric_fields()))
def test_every_numeric_field_is_checked_where_declared(cls, name, tp):
    """NaN and ±∞ for every float field, a negative number for every integer one."""
    for bad in (math.nan, math.inf, -math.inf) if tp is float else (-1,):
        with pytest.raises(InvalidValue) as caught:
            cls(**{name: bad})
        assert caught.value.key == name and name in str(caught.value)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A folder with a two-step digits run, a plain file, a folder and a small image folder."""
    root = tmp_path_factory.mktemp("bad")
    assert main([*TRAIN, "--train.checkpoint_every", "2", "--out", str(root / "run")]) == 0
    (root / "file.txt").write_text("keep me")
    (root / "folder").mkdir()
    (root / "folder" / "x.gif").mkdir()
    (root / "folder" / "d.png").mkdir()
    images = root / "images"
    images.mkdir()
    for i in range(3):
        Image.new("L", (8, 8), 40 * i).save(images / f"{i}.png")
    (images / "broken.png").write_bytes(b"not a png")
    return root


def _sample(*args):
    return ["sample", "{run}", "--num", "2", "--steps", "2", "--no-progress", "--out", "{root}/s.png", *args]


def _restore(*args):
    return ["restore", "{run}", "--input", "{root}/images/0.png", "--out", "{root}/r.png", *args]


def _eval(*args):
    return ["eval", "{run}", "--metrics", "fid", "--num", "10", "--steps", "2", "--no-progress", *args]


FINITE = "must be a finite number"
CASES = [
    # configuration values out of range, named as the user writes them
    ([*TRAIN, "--out", "{root}/n", "--train.lr", "nan"], f"train.lr {FINITE} > 0, got nan"),
    ([*TRAIN, "--out", "{root}/n", "--train.lr", "0"], f"train.lr {FINITE} > 0"),
    ([*TRAIN, "--out", "{root}/n", "--model.dropout", "1"], f"model.dropout {FINITE} in [0, 1)"),
    ([*TRAIN, "--out", "{root}/n", "--model.dropout", "-0.1"], "model.dropout"),
    ([*TRAIN, "--out", "{root}/n", "--train.ema_decay", "1"], f"train.ema_decay {FINITE} in [0, 1)"),
    ([*TRAIN, "--out", "{root}/n", "--train.adam_beta2", "1.5"], "train.adam_beta2"),
    ([*TRAIN, "--out", "{root}/n", "--model.base_channels", "0"], "model.base_channels must be an integer"),
    ([*TRAIN, "--out", "{root}/n", "--model.head_channels", "-1"], "model.head_channels must be an integer"),
    ([*TRAIN, "--out", "{root}/n", "--model.head_channels", "5"], "model.head_channels must divide"),
    ([*TRAIN, "--out", "{root}/n", "--train.weight_decay", "-1"], f"train.weight_decay {FINITE} ≥ 0"),
    ([*TRAIN, "--out", "{root}/n", "--diffusion.cosine_s", "-0.1"], "diffusion.cosine_s must be"),
    ([*TRAIN, "--out", "{root}/n", "--diffusion.beta_start", "nan"], "diffusion.beta_start"),
    ([*TRAIN, "--out", "{root}/n", "--train.grad_clip", "inf"], "train.grad_clip must be a finite number"),
    ([*TRAIN, "--out", "{root}/n", "--train.time_limit_minutes", "-1"], "train.time_limit_minutes"),
    ([*TRAIN, "--out", "{root}/n", "--data.cond_augment", "nan"], "data.cond_augment"),
    ([*TRAIN, "--out", "{root}/n", "--sample.guidance", "-1"], "sample.guidance must be a finite number ≥ 0"),
    ([*TRAIN, "--out", "{root}/n", "--sample.eta", "nan"], "sample.eta"),
    ([*TRAIN, "--out", "{root}/n", "--model.channel_mult", "1,0"], "model.channel_mult"),
    # a data set smaller than the batch once unreadable files are skipped
    (
        [*TRAIN, "--out", "{root}/n", "--data.dataset", "folder", "--data.path", "{root}/images"]
        + ["--data.image_size", "8", "--data.channels", "1", "--model.image_size", "8"]
        + ["--train.batch_size", "4"],
        "has 3 usable images, fewer than train.batch_size = 4",
    ),
    # train's --out: a file, a path under a file, a folder that takes no files
    ([*TRAIN, "--out", "{root}/file.txt"], "is a file, not a folder"),
    ([*TRAIN, "--out", "{root}/file.txt/run"], "is a file, not a folder"),
    ([*TRAIN, "--out", "/proc/ddpm-run"], "--out /proc/ddpm-run: cannot write in /proc"),
    # sample
    (_sample("--eta", "nan"), "--eta must be a finite number ≥ 0, got nan"),
    (_sample("--steps", "-1"), "--steps must be an integer ≥ 0"),
    (_sample("--order", "5"), "--order must be an integer in [0, 3]"),
    (_sample("--dynamic-threshold", "1"), "--dynamic-threshold"),
    (_sample("--rho", "0"), "--rho must be a finite number > 0"),
    (_sample("--nrow", "0"), "--nrow must be ≥ 1"),
    (_sample("--scale", "-2"), "--scale must be ≥ 1"),
    (_sample("--gif", "{root}/a.gif", "--gif-num", "-1"), "--gif-num must be ≥ 1"),
    (_sample("--batch-size", "0"), "--batch-size must be ≥ 1"),
    (_sample("--aug-level", "nan"), "--aug-level must be a number in [0, 1)"),
    (_sample("--seed", "-1"), "--seed must be"),
    (_sample("--num", str(10**12)), "GiB of RAM; lower --num"),
    (_sample("--scale", str(10**6)), "GiB of RAM"),
    (_sample("--guidance", "2"), "needs a conditional model"),
    (_sample("--steps", "abc"), "invalid int value: 'abc'"),
    (_sample("--out", "{root}/folder"), "must end in .png"),
    (_sample("--out", "{root}/folder/d.png"), "--out {root}/folder/d.png is a folder"),
    (_sample("--gif", "{root}/folder/x.gif"), "--gif {root}/folder/x.gif is a folder"),
    (_sample("--out", "{root}/file.txt/s.png"), "file.txt is a file, not a folder"),
    (_sample("--out", "/proc/ddpm.png"), "--out /proc/ddpm.png: cannot write in /proc"),
    (_sample("--save-each", "{root}/file.txt"), "--save-each {root}/file.txt is a file"),
    # restore
    (_restore("--samples", "0"), "--samples must be ≥ 1"),
    (_restore("--eta", "nan"), "--eta must be a finite number ≥ 0, got nan"),
    (_restore("--out", "{root}/folder"), "--out {root}/folder is a folder"),
    # eval
    (_eval("--eta", "nan"), "--eta must be a finite number ≥ 0, got nan"),
    (_eval("--batch-size", "0"), "--batch-size"),
    (_eval("--num", str(10**12)), "GiB of RAM; lower --num"),
    (_eval("--out", "{root}/folder"), "--out {root}/folder is a folder"),
    (_eval("--out", "{root}/file.txt/r.json"), "is a file, not a folder"),
    # data
    (["data", "faces", "--out", "{root}/faces", "--sizes", "abc"], "--sizes must be whole numbers"),
    (["data", "faces", "--out", "{root}/faces", "--sizes", "0"], "--sizes must list sizes from 1"),
    (["data", "faces", "--out", "{root}/faces", "--workers", "-3"], "--workers must be ≥ 0"),
    (["data", "faces", "--out", "{root}/faces", "--num", "0"], "--num must be ≥ 1"),
    (["data", "faces", "--out", "{root}/file.txt"], "is a file, not a folder"),
    (["data", "emoji", "--out", "{root}/emoji", "--sizes", "32,x"], "--sizes must be whole numbers"),
    (["data", "emoji", "--out", "{root}/file.txt/e"], "is a file, not a folder"),
]


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(c[0][:1] + c[0][-2:]) for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(work, argv, message, capsys):
    fill = {"root": str(work), "run": str(work / "run")}
    argv = [a.format(**fill) for a in argv]
    before = snapshot_tree(work)
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own usage errors
        code = stop.code
    err = capsys.readouterr().err.strip().splitlines()
    # the image-folder loader first warns about the files it skipped, on lines of their own
    lines = [line for line in err if not line.startswith(("warning: skipped", "  "))]
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith(f"ddpm {argv[0]}"), err
    assert message.format(**fill) in lines[0]
    assert snapshot_tree(work) == before


def test_an_os_error_while_working_is_one_line(monkeypatch, capsys):
    """A path that fails only once the work has begun (full disk, permissions) is one line too."""
    import ddpm.cli.samplers

    def fail(args):
        raise PermissionError(13, "Permission denied", "/somewhere/out.png")

    monkeypatch.setattr(ddpm.cli.samplers, "run", fail)
    assert main(["samplers"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["ddpm samplers: error: Permission denied (/somewhere/out.png); check the path"]
