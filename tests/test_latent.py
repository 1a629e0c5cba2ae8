"""Latent diffusion end to end: tiny autoencoder → tiny latent model → sample → eval, and the
checks that keep a latent model with its own autoencoder."""

import json
import shutil

import pytest
import torch
from PIL import Image

from ddpm.checkpoints import CheckpointDir, read_tensors
from ddpm.cli.main import main
from ddpm.errors import UserError
from ddpm.pipelines import generate
from ddpm.pipelines.autoencoders import load_autoencoder, weights_digest
from ddpm.pipelines.latent import encode_posteriors, posterior_encoder
from ddpm.pipelines.loading import load_model
from ddpm.samplers import SAMPLER_TABLE, SamplerConfig
from ddpm.training.examples import CachedLatents, OnTheFlyLatents
from tests.helpers import fake_emoji_package


@pytest.fixture(scope="module")
def faces64(tmp_path_factory):
    out = tmp_path_factory.mktemp("faces") / "faces"
    assert main(["data", "faces", "--num", "110", "--out", str(out), "--workers", "1", "--sizes", "64"]) == 0
    return out


def _train_ae(faces64, out, *extra):
    args = ["train", "--config", "faces64-autoencoder-tiny", "--out", str(out)]
    return main([*args, "--data.path", str(faces64), "--no-progress", *extra])


def _train_latent(faces64, ae, out, *extra):
    args = ["train", "--config", "faces64-latent-tiny", "--out", str(out), "--latent.autoencoder", str(ae)]
    return main([*args, "--data.path", str(faces64), "--no-progress", *extra])


@pytest.fixture(scope="module")
def runs(faces64, tmp_path_factory):
    root = tmp_path_factory.mktemp("latent")
    assert _train_ae(faces64, root / "ae") == 0
    assert _train_latent(faces64, root / "ae", root / "latent") == 0
    return root


def test_the_whole_path_through_the_command_line(runs, faces64, capsys, tmp_path):
    ae_meta = json.loads((CheckpointDir(runs / "ae").latest() / "checkpoint.json").read_text())
    assert ae_meta["model_type"] == "autoencoder" and ae_meta["latent_scale_factor"] > 0
    preview = Image.open(runs / "ae" / "samples" / "step-0000008.png")  # inputs above reconstructions
    assert preview.size == (2 * (4 * 64 + 5 * 2), 2 * (2 * 64 + 3 * 2))  # 4 columns, 2 rows, enlarged 2×
    meta = json.loads((CheckpointDir(runs / "latent").latest() / "checkpoint.json").read_text())
    assert meta["autoencoder"]["source"] == str((runs / "ae").resolve() / "checkpoints" / "step-0000008")
    assert meta["autoencoder"]["scale_factor"] == ae_meta["latent_scale_factor"]
    assert Image.open(runs / "latent" / "samples" / "step-0000008.png").size[0] >= 64 * 2  # decoded
    png, gif = tmp_path / "s.png", tmp_path / "s.gif"
    assert (
        main(
            [
                "sample",
                str(runs / "latent"),
                "--num",
                "4",
                "--nrow",
                "4",
                "--scale",
                "1",
                "--out",
                str(png),
                "--gif",
                str(gif),
                "--no-progress",
            ]
        )
        == 0
    )
    assert Image.open(png).size == (4 * 64 + 5 * 2, 64 + 2 * 2)
    assert Image.open(gif).n_frames > 2
    report = tmp_path / "report.json"
    assert (
        main(
            [
                "eval",
                str(runs / "latent"),
                "--metrics",
                "fid",
                "--num",
                "10",
                "--steps",
                "2",
                "--out",
                str(report),
                "--no-progress",
            ]
        )
        == 0
    )
    fid = json.loads(report.read_text())["metrics"]["fid"]
    assert fid["value"] > 0 and fid["floor"] >= 0


def test_latent_samples_decode_to_images_of_the_data_shape_and_range(runs):
    loaded = load_model(runs / "latent")
    assert loaded.image_shape == (3, 64, 64) and loaded.autoencoder is not None
    out = generate(loaded, 3, seed=1, progress=False)
    assert out.images.shape == (3, 3, 64, 64)
    assert out.images.min() >= -1 and out.images.max() <= 1 and out.images.std() > 0
    again = generate(loaded, 3, seed=1, progress=False)
    assert torch.equal(out.images, again.images)


def test_a_latent_model_refuses_another_autoencoder(runs, faces64, tmp_path, capsys):
    other = tmp_path / "other-ae"
    assert _train_ae(faces64, other, "--train.seed", "1") == 0
    with pytest.raises(UserError, match="not the one this latent model was trained with"):
        load_model(runs / "latent", autoencoder=other)
    # the recorded source now holds different weights: refused on load, in one line
    moved = tmp_path / "latent"
    shutil.copytree(runs / "latent", moved)
    latest = CheckpointDir(moved).latest()
    meta = json.loads((latest / "checkpoint.json").read_text())
    meta["autoencoder"]["source"] = str(other)
    (latest / "checkpoint.json").write_text(json.dumps(meta))
    assert main(["sample", str(moved), "--num", "2", "--out", str(tmp_path / "x.png"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "not the one this latent model was trained with" in err and "Traceback" not in err
    # an autoencoder retrained in place: resuming on its latents is refused before anything is written
    swapped, run = tmp_path / "ae-swap", tmp_path / "latent2"
    shutil.copytree(runs / "ae", swapped)
    assert _train_latent(faces64, swapped, run, "--train.steps", "4") == 0
    shutil.rmtree(swapped)
    shutil.copytree(other, swapped)
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert _train_latent(faces64, swapped, run, "--resume", "--train.steps", "8") == 2
    assert "another autoencoder" in capsys.readouterr().err
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before


def test_cached_and_on_the_fly_latents_give_the_same_batches(runs, faces64):
    from ddpm.data import DataConfig, load_dataset

    coder = load_autoencoder(runs / "ae")
    images = load_dataset(DataConfig(dataset="faces", path=str(faces64), image_size=64, channels=3)).images
    mean, std = encode_posteriors(coder, images, batch_size=7, progress=False)
    cached = CachedLatents(mean, std, coder.scale_factor, coder.decode_latents)
    fly = OnTheFlyLatents(
        images, posterior_encoder(coder), cached.shape, coder.scale_factor, coder.decode_latents
    )
    idx = torch.tensor([3, 0, 17, 5])
    a = cached.batch(idx, torch.Generator().manual_seed(4))
    b = fly.batch(idx, torch.Generator().manual_seed(4))
    assert a.shape == (4, 3, 16, 16) and torch.allclose(a, b, atol=1e-4)


def test_autoencoder_resume_continues_the_same_trajectory(faces64, tmp_path):
    assert _train_ae(faces64, tmp_path / "straight") == 0
    assert _train_ae(faces64, tmp_path / "split", "--train.steps", "4") == 0
    assert (
        main(["train", "--out", str(tmp_path / "split"), "--resume", "--train.steps", "8", "--no-progress"])
        == 0
    )
    a = read_tensors(CheckpointDir(tmp_path / "straight").latest(), "model")
    b = read_tensors(CheckpointDir(tmp_path / "split").latest(), "model")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    d1 = read_tensors(CheckpointDir(tmp_path / "straight").latest(), "discriminator")
    d2 = read_tensors(CheckpointDir(tmp_path / "split").latest(), "discriminator")
    assert all(torch.equal(d1[k], d2[k]) for k in d1)


def test_export_keeps_the_autoencoder_identity(runs, tmp_path, capsys):
    ae_out, lat_out = tmp_path / "ae", tmp_path / "lat"
    assert main(["export", str(runs / "ae"), "--out", str(ae_out)]) == 0
    assert load_autoencoder(ae_out).digest == load_autoencoder(runs / "ae").digest
    assert main(["export", str(runs / "latent"), "--out", str(lat_out), "--autoencoder", str(ae_out)]) == 0
    loaded = load_model(lat_out)
    assert loaded.meta["autoencoder"]["source"] == str(ae_out.resolve())
    assert loaded.autoencoder.digest == weights_digest(read_tensors(ae_out, "model"))
    half = tmp_path / "ae16"
    assert main(["export", str(runs / "ae"), "--out", str(half), "--dtype", "float16"]) == 0
    assert (
        main(["export", str(runs / "latent"), "--out", str(tmp_path / "l2"), "--autoencoder", str(half)]) == 2
    )
    assert "not the one" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model.image_size", "8"], "set model.in_channels = 3 and model.image_size = 16"),
        (["--sample.clip_x0", "true"], "scaled latents are not bounded"),
        (["--data.image_size", "32"], "set data.image_size = 64"),
    ],
)
def test_latent_configuration_mistakes_get_one_line(runs, faces64, tmp_path, capsys, extra, message):
    assert _train_latent(faces64, runs / "ae", tmp_path / "bad", *extra) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not (tmp_path / "bad").exists()


def test_autoencoders_and_diffusion_models_are_not_confused(runs, faces64, tmp_path, capsys):
    assert _train_latent(faces64, runs / "latent", tmp_path / "bad") == 2
    assert "is a diffusion model, not an autoencoder" in capsys.readouterr().err
    assert main(["sample", str(runs / "ae"), "--num", "2", "--out", str(tmp_path / "x.png")]) == 2
    assert "is an autoencoder, not a diffusion model" in capsys.readouterr().err


@pytest.mark.parametrize("sampler", sorted(SAMPLER_TABLE))
def test_every_sampler_works_on_a_latent_model(runs, sampler):
    loaded = load_model(runs / "latent")
    config = SamplerConfig(sampler=sampler, steps=4, clip_x0=False)
    out = generate(loaded, 2, seed=0, sampler=config, progress=False)
    assert out.images.shape == (2, 3, 64, 64) and torch.isfinite(out.images).all()


def test_class_guidance_on_a_latent_model(runs, faces64, tmp_path):
    run = tmp_path / "classes"
    assert _train_latent(faces64, runs / "ae", run, "--model.num_classes", "4") == 0
    out = tmp_path / "classes.png"
    args = ["--class", "0,3", "--guidance", "3", "--num", "2", "--nrow", "2", "--scale", "1", "--no-progress"]
    assert main(["sample", str(run), *args, "--out", str(out)]) == 0
    assert Image.open(out).size == (2 * 64 + 3 * 2, 64 + 2 * 2)


def test_text_cross_attention_on_a_latent_model(tmp_path):
    data = tmp_path / "emoji"
    package = fake_emoji_package(tmp_path / "pkg")
    assert main(["data", "emoji", "--source", str(package), "--out", str(data), "--sizes", "16"]) == 0
    common = ["--data.dataset", "emoji", "--data.split", "all", "--data.image_size", "16", "--no-progress"]
    common += ["--data.path", str(data)]
    ae = tmp_path / "ae"
    shape = "--autoencoder.image_size 16 --autoencoder.channel_mult 1,2 --autoencoder.latent_channels 4"
    assert _train_ae(tmp_path, ae, *common, *shape.split()) == 0
    run = tmp_path / "text"
    latent = (
        "--config emoji-text-tiny --model.image_size 8 --model.in_channels 4 --model.channel_mult 1,2 "
        "--model.attention_resolutions 4 --sample.clip_x0 false --train.steps 6 --train.batch_size 4"
    )
    assert main(["train", *latent.split(), "--latent.autoencoder", str(ae), *common, "--out", str(run)]) == 0
    out = tmp_path / "prompted.png"
    prompts = ["--prompt", "large red circle", "--prompt", "large blue square", "--guidance", "3"]
    rest = ["--num", "2", "--steps", "4", "--scale", "1", "--nrow", "2", "--no-progress"]
    assert main(["sample", str(run), *prompts, *rest, "--out", str(out)]) == 0
    assert Image.open(out).size == (2 * 16 + 3 * 2, 16 + 2 * 2)


def test_info_describes_autoencoders_and_latent_models(runs, capsys):
    assert main(["info", str(runs / "ae")]) == 0
    out = capsys.readouterr().out
    assert "3×64×64 → 3×16×16 (f = 4)" in out and "scale factor" in out
    assert main(["info", str(runs / "latent"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["autoencoder"]["digest"] == load_autoencoder(runs / "ae").digest


def test_the_pretrained_faces64_samples_decoded_faces(tmp_path):
    loaded = load_model("faces64")
    assert loaded.image_shape == (3, 64, 64) and loaded.autoencoder.source == "faces64-autoencoder"
    assert loaded.autoencoder.digest == loaded.meta["autoencoder"]["digest"]
    out = tmp_path / "faces.png"
    assert main(["sample", "faces64", "--num", "4", "--steps", "5", "--scale", "1", "--out", str(out)]) == 0
    assert Image.open(out).size == (2 * 64 + 3 * 2, 2 * 64 + 3 * 2)
