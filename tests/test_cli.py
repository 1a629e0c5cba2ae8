"""The ``ddpm`` command end to end on the digits, and its answers to bad input."""

import json
import subprocess
import sys

import pytest
from PIL import Image

from ddpm.cli.main import main

TINY = [
    "--config",
    "digits-tiny",
    "--train.steps",
    "30",
    "--train.checkpoint_every",
    "15",
    "--train.sample_every",
    "15",
    "--train.sample_steps",
    "10",
    "--no-progress",
]


def _files(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    return out


def test_train_writes_a_complete_run(run_dir):
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "step-0000030"
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["step-0000015.png", "step-0000030.png"]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["train"]["steps"] == 30 and config["data"]["dataset"] == "digits"
    assert [json.loads(line)["step"] for line in (run_dir / "log.jsonl").read_text().splitlines()] == [20, 30]


def test_sample_grid_and_gif(run_dir, tmp_path):
    args = ["sample", str(run_dir), "--num", "6", "--steps", "20", "--no-progress", "--nrow", "3"]
    assert (
        main([*args, "--out", str(tmp_path / "a.png"), "--gif", str(tmp_path / "a.gif"), "--scale", "1"]) == 0
    )
    grid = Image.open(tmp_path / "a.png")
    assert grid.size == (3 * 10 + 2, 2 * 10 + 2)  # 3×2 tiles of 8 px with 2 px padding
    gif = Image.open(tmp_path / "a.gif")
    assert gif.n_frames > 5


def test_same_seed_same_png_other_seed_other_png(run_dir, tmp_path):
    for name, seed in (("x.png", "7"), ("y.png", "7"), ("z.png", "8")):
        assert (
            main(
                [
                    "sample",
                    str(run_dir),
                    "--num",
                    "4",
                    "--steps",
                    "10",
                    "--seed",
                    seed,
                    "--out",
                    str(tmp_path / name),
                    "--no-progress",
                ]
            )
            == 0
        )
    x, y, z = ((tmp_path / n).read_bytes() for n in ("x.png", "y.png", "z.png"))
    assert x == y and x != z


def test_ddim_and_save_each(run_dir, tmp_path):
    assert (
        main(
            [
                "sample",
                str(run_dir),
                "--num",
                "3",
                "--sampler",
                "ddim",
                "--steps",
                "10",
                "--eta",
                "0",
                "--out",
                str(tmp_path / "g.png"),
                "--save-each",
                str(tmp_path / "each"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "each").iterdir()) == ["00000.png", "00001.png", "00002.png"]
    assert Image.open(tmp_path / "each" / "00000.png").size == (8, 8)


def test_info_and_export(run_dir, tmp_path, capsys):
    assert main(["info", str(run_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["step"] == 30 and info["parameters"] > 0
    assert main(["export", str(run_dir), "--out", str(tmp_path / "small"), "--dtype", "float16"]) == 0
    assert sorted(p.name for p in (tmp_path / "small").iterdir()) == ["checkpoint.json", "ema.safetensors"]
    assert (
        main(
            [
                "sample",
                str(tmp_path / "small"),
                "--num",
                "2",
                "--steps",
                "5",
                "--out",
                str(tmp_path / "s.png"),
                "--no-progress",
            ]
        )
        == 0
    )


def _copy_run(run_dir, copy):
    """A byte-for-byte copy of a training run, to change without touching the shared one."""
    for path, data in _files(run_dir).items():
        target = copy / path.relative_to(run_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return copy


def test_resume_continues_and_extends(run_dir, tmp_path):
    copy = _copy_run(run_dir, tmp_path / "run")
    assert main(["train", "--out", str(copy), "--resume", "--train.steps", "45", "--no-progress"]) == 0
    assert (copy / "checkpoints" / "latest").read_text().strip() == "step-0000045"


def test_resume_a_checkpoint_that_predates_a_new_setting(run_dir, tmp_path):
    """Settings added after a checkpoint was written take their defaults instead of blocking resume."""
    copy = _copy_run(run_dir, tmp_path / "run")
    meta_path = copy / "checkpoints" / "step-0000030" / "checkpoint.json"
    meta = json.loads(meta_path.read_text())
    del meta["config"]["model"]["aug_level"], meta["config"]["data"]["task"]
    meta_path.write_text(json.dumps(meta))
    assert main(["train", "--out", str(copy), "--resume", "--train.steps", "45", "--no-progress"]) == 0
    assert (copy / "checkpoints" / "latest").read_text().strip() == "step-0000045"


def _error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_input_gives_one_line_and_changes_nothing(run_dir, tmp_path, capsys):
    before = _files(run_dir)
    assert "unknown configuration key 'model.base_chanels'" in _error(
        capsys,
        [
            "train",
            "--config",
            str(_toml(tmp_path, "[model]\nbase_chanels = 3\n")),
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert "did you mean 'base_channels'" in _error(
        capsys,
        [
            "train",
            "--config",
            str(_toml(tmp_path, "[model]\nbase_chanels = 3\n")),
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert "already holds a training run" in _error(capsys, ["train", *TINY, "--out", str(run_dir)])
    assert "differs in model.base_channels" in _error(
        capsys, ["train", *TINY, "--out", str(run_dir), "--resume", "--model.base_channels", "8"]
    )
    assert "not found" in _error(
        capsys, ["sample", str(tmp_path / "missing"), "--out", str(tmp_path / "z.png")]
    )
    assert "expects int" in _error(
        capsys, ["train", *TINY, "--out", str(tmp_path / "y"), "--train.steps", "many"]
    )
    assert "not valid TOML" in _error(
        capsys, ["train", "--config", str(_toml(tmp_path, "[model")), "--out", "q"]
    )
    assert _files(run_dir) == before


def test_diverging_loss_stops_with_a_clear_error_and_keeps_the_checkpoint(run_dir, tmp_path, capsys):
    copy = _copy_run(run_dir, tmp_path / "run")
    before = _files(copy / "checkpoints")
    err = _error(
        capsys,
        [
            "train",
            "--out",
            str(copy),
            "--resume",
            "--train.steps",
            "60",
            "--train.lr",
            "1e30",
            "--train.grad_clip",
            "0",
            "--no-progress",
        ],
    )
    assert "loss became" in err and "step 30, is kept" in err
    assert _files(copy / "checkpoints") == before


def _toml(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_module_entry_point_and_help():
    out = subprocess.run([sys.executable, "-m", "ddpm", "sample", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--gif" in out.stdout and "fashion-mnist" in out.stdout


def test_sample_eval_and_restore_offer_every_sampler_option(capsys, monkeypatch):
    """The sampler flags are made from SamplerConfig: every field, with its help text, in each."""
    from dataclasses import fields

    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping inside words such as "Euler-ancestral"
    from ddpm.configuration import flag_name
    from ddpm.samplers import SamplerConfig

    for command in ("sample", "eval", "restore"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        for f in fields(SamplerConfig):
            assert flag_name(f.name, SamplerConfig) in text, (command, f.name)
            assert f.metadata["help"] in text, (command, f.name)
    assert "--clip" in text and "--no-clip" in text and "--dynamic-threshold" in text


def test_eval_nll_and_inception_metrics(run_dir, tmp_path, capsys):
    out = tmp_path / "report.json"
    assert (
        main(
            [
                "eval",
                str(run_dir),
                "--metrics",
                "fid,kid,pr,nll",
                "--num",
                "12",
                "--nll-num",
                "4",
                "--steps",
                "10",
                "--no-progress",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    m = report["metrics"]
    assert m["fid"]["value"] > m["fid"]["floor"] > 0
    assert set(m["pr"]) >= {"precision", "recall", "floor_precision", "floor_recall"}
    assert 0 < m["nll"]["bits_per_dim"] < 20 and len(m["nll"]["terms"]["kl_by_band"]) == 10
    assert "inception-v3" in report["protocols"]["inception"]
    assert "FID" in capsys.readouterr().out
    assert "need a 32×32 Fashion-MNIST" in _error(capsys, ["eval", str(run_dir), "--metrics", "fd-domain"])
    assert "unknown metric" in _error(capsys, ["eval", str(run_dir), "--metrics", "is"])


def test_eval_saved_samples_measure_the_same(run_dir, tmp_path, capsys):
    base = ["eval", str(run_dir), "--metrics", "fid", "--num", "12", "--steps", "10", "--no-progress"]
    saved, first, second = tmp_path / "s.npz", tmp_path / "a.json", tmp_path / "b.json"
    assert main([*base, "--save-samples", str(saved), "--out", str(first)]) == 0
    assert main([*base, "--samples", str(saved), "--out", str(second)]) == 0
    a, b = (json.loads(p.read_text())["metrics"]["fid"] for p in (first, second))
    assert a == pytest.approx(b)
    assert "already exists" in _error(capsys, [*base, "--save-samples", str(saved)])
    assert "lower --num" in _error(capsys, [*base[:5], "13", *base[6:], "--samples", str(saved)])
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    assert "not a .npz" in _error(capsys, [*base, "--samples", str(tmp_path / "bad.npz")])


def test_every_sampler_runs_from_the_command_line(run_dir, tmp_path, capsys):
    from ddpm.samplers import SAMPLERS

    for name in SAMPLERS:
        out = tmp_path / f"{name}.png"
        assert (
            main(
                [
                    "sample",
                    str(run_dir),
                    "--sampler",
                    name,
                    "--steps",
                    "6",
                    "--num",
                    "2",
                    "--out",
                    str(out),
                    "--no-progress",
                ]
            )
            == 0
        ), name
        assert out.is_file()
    assert main(["samplers"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in SAMPLERS)
    assert "only" in _error(
        capsys,
        [
            "sample",
            str(run_dir),
            "--sampler",
            "ddim",
            "--spacing",
            "karras",
            "--out",
            str(tmp_path / "x.png"),
        ],
    )
