"""diffusers folders out (``ddpm export --format diffusers``) and in (``load_model(DIR)``), with
diffusers' own classes as the oracle: same network outputs, same sampling chain."""

import json
from dataclasses import replace

import pytest
import torch
from diffusers import DDIMScheduler, DDPMPipeline, DDPMScheduler, UNet2DModel
from diffusers.models.embeddings import get_timestep_embedding
from safetensors.torch import save_file

from ddpm.checkpoints import write_checkpoint
from ddpm.cli.main import main
from ddpm.configuration import to_dict
from ddpm.errors import UserError
from ddpm.models import UNet, UNetConfig
from ddpm.models.denoiser import model_denoiser
from ddpm.models.embeddings import sinusoidal_embedding
from ddpm.models.preconditioning import diffusion_network
from ddpm.pipelines import export_diffusers, generate, load_model
from ddpm.pipelines.experiment import load_experiment_config
from ddpm.samplers import SamplerConfig, TrajectoryRecorder, ddpm_sample

SMALL = {"image_size": 16, "base_channels": 32, "norm_groups": 8, "dropout": 0.0}
OUR_CONFIGS = {
    "attention-16": {**SMALL, "channel_mult": (1, 2, 2), "num_res_blocks": 1, "attention_resolutions": (8,)},
    "one-head-classes": {
        **SMALL,
        "channel_mult": (1, 2),
        "attention_resolutions": (16,),
        "head_channels": 0,
        "num_classes": 3,
    },
    "ddpm-tf-embedding-no-mid-attention": {
        **SMALL,
        "in_channels": 3,
        "channel_mult": (1, 1, 2),
        "attention_resolutions": (),
        "mid_attention": False,
        "time_cos_first": False,
        "time_frequency_shift": 1,
        "norm_eps": 1e-5,
        "downsample_padding": 0,
    },
    "rectangular": {**SMALL, "image_width": 32, "channel_mult": (1, 2), "attention_resolutions": (8,)},
}


def _randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-zero weights everywhere (our zero-initialised output layers would hide mistakes)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model.eval()


def _checkpoint(tmp_path, model_options: dict, **diffusion) -> tuple:
    """An inference checkpoint of a randomly initialised U-Net (T = 50 for quick chains)."""
    config = load_experiment_config("digits-tiny")
    config.model = UNetConfig(**model_options)
    config.diffusion = replace(config.diffusion, num_timesteps=50, **diffusion)
    config.data = replace(config.data, image_size=config.model.image_size)
    model = _randomise(UNet(config.model))
    path = write_checkpoint(tmp_path / "ours", {"ema": model.state_dict()}, {"config": to_dict(config)})
    return path, model


def _inputs(c: UNetConfig, batch: int = 2):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, c.in_channels, c.image_size, c.width, generator=g)
    t = torch.tensor([3, 41][:batch])
    labels = {"class_labels": torch.tensor([0, 2][:batch])} if c.num_classes else {}
    return x, t, labels


@pytest.mark.parametrize("name", list(OUR_CONFIGS))
def test_exported_unet_computes_what_ours_computes(tmp_path, name):
    path, ours = _checkpoint(tmp_path, OUR_CONFIGS[name])
    folder = export_diffusers(path, tmp_path / "exported")
    theirs = UNet2DModel.from_pretrained(folder / "unet").eval()
    x, t, labels = _inputs(ours.config)
    with torch.no_grad():
        expected = ours(x, t, **labels)
        got = theirs(x, t, **labels).sample
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)
    # and back: the folder read as ours rebuilds the same configuration and weights
    back = load_model(folder, device="cpu")
    assert back.config.model == ours.config
    with torch.no_grad():
        assert torch.allclose(back.model(x, t, **labels), expected, atol=1e-6, rtol=0)


def _both_chains(pipe, loaded, steps: int, variance: str) -> tuple[list, list]:
    """Every x_{t−1} of diffusers' loop (the DDPMPipeline loop, step by step) and of our ancestral
    sampler on the same chain, from the same x_T and the same per-step noise stream."""
    scheduler = pipe.scheduler
    scheduler.set_timesteps(steps)
    x_T = torch.randn((2, 1, 16, 16), generator=torch.Generator().manual_seed(3))
    x, theirs, g = x_T.clone(), [], torch.Generator().manual_seed(4)
    for t in scheduler.timesteps:
        with torch.no_grad():
            out = pipe.unet(x, t).sample
        x = scheduler.step(out, t, x, generator=g).prev_sample
        theirs.append(x)
    recorder = TrajectoryRecorder()
    final = ddpm_sample(
        model_denoiser(loaded.model),
        x_T.clone(),
        loaded.schedule,
        generator=torch.Generator().manual_seed(4),
        prediction_type=loaded.prediction_type,
        variance=variance,
        clip_x0=loaded.config.sample.clip_x0,
        timesteps=None if steps == scheduler.config.num_train_timesteps else scheduler.timesteps.flip(0),
        callback=recorder,
    )
    ours = [*recorder.xt[1:], final]  # the recorder sees each x_t before its step
    assert len(ours) == len(theirs) == steps
    return ours, theirs


def test_ddpm_pipeline_samples_what_our_ancestral_sampler_samples(tmp_path):
    path, _ = _checkpoint(tmp_path, OUR_CONFIGS["attention-16"], schedule="cosine")
    loaded = load_model(path, device="cpu", channels_last=False)
    pipe = DDPMPipeline.from_pretrained(export_diffusers(path, tmp_path / "exported"))
    assert pipe.scheduler.config.num_train_timesteps == 50
    variance = loaded.config.sample.variance
    assert (
        pipe.scheduler.config.variance_type == {"beta": "fixed_large", "beta_tilde": "fixed_small"}[variance]
    )
    ours, theirs = _both_chains(pipe, loaded, 50, variance)
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert torch.allclose(a, b, atol=1e-5, rtol=0), f"step {step}: {(a - b).abs().max():.2e}"


def _learned_variance_checkpoint(tmp_path) -> tuple:
    """A random learned-variance model (T = 50), its v output kept near [0, 1] as a trained one's."""
    config = load_experiment_config("digits-tiny")
    config.model = UNetConfig(**OUR_CONFIGS["attention-16"])
    config.diffusion = replace(config.diffusion, num_timesteps=50, learned_variance=True)
    config.data = replace(config.data, image_size=config.model.image_size)
    config.sample = replace(config.sample, variance="learned")
    model = _randomise(diffusion_network(config.model, config.diffusion))
    with torch.no_grad():
        model.out_conv.weight[1:] *= 0.1
        model.out_conv.bias[1:] = 0.5
    path = write_checkpoint(tmp_path / "ours", {"ema": model.state_dict()}, {"config": to_dict(config)})
    return path, model


def test_a_learned_variance_model_samples_in_ddpm_pipeline_as_in_ours(tmp_path):
    path, _ = _learned_variance_checkpoint(tmp_path)
    loaded = load_model(path, device="cpu", channels_last=False)
    pipe = DDPMPipeline.from_pretrained(export_diffusers(path, tmp_path / "exported"))
    assert pipe.scheduler.config.variance_type == "learned_range"
    assert pipe.unet.config.out_channels == 2
    # the full chain, and a respaced one (β and β̃ of the jumps, whose float32 coefficients the two
    # compute in different orders: 2e-5 apart at the last step)
    for steps, tolerance in ((50, 1e-5), (10, 5e-5)):
        ours, theirs = _both_chains(pipe, loaded, steps, "learned")
        for step, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert torch.allclose(a, b, atol=tolerance, rtol=0), (
                f"{steps} steps, step {step}: {(a - b).abs().max():.2e}"
            )


def test_a_diffusers_learned_range_folder_reads_as_a_learned_variance_model(tmp_path):
    unet = _randomise(UNet2DModel(**{**THEIR_CONFIGS["defaults-small"], "out_channels": 2}), seed=5)
    scheduler = DDPMScheduler(num_train_timesteps=100, variance_type="learned_range")
    folder = tmp_path / "theirs"
    DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(folder, safe_serialization=True)
    loaded = load_model(folder, device="cpu", channels_last=False)
    assert loaded.config.diffusion.learned_variance and loaded.config.sample.variance == "learned"
    assert loaded.config.model.out_channels == 0  # the prediction's channels; the network doubles them
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([3, 71])
    with torch.no_grad():
        raw, ours = unet(x, t).sample, loaded.model(x, t)
    assert torch.allclose(ours[:, :1], raw[:, :1], atol=1e-5, rtol=0)  # the prediction as it is
    assert torch.allclose(ours[:, 1:], (raw[:, 1:] + 1) / 2, atol=1e-5, rtol=0)  # v = (v_raw + 1)/2
    # and back out: the exported weights are diffusers' own again
    again = UNet2DModel.from_pretrained(export_diffusers(folder, tmp_path / "again") / "unet")
    for name, tensor in unet.state_dict().items():
        assert torch.allclose(again.state_dict()[name], tensor, atol=1e-6, rtol=0), name


def test_the_pipeline_call_runs_on_the_exported_folder(tmp_path):
    path, _ = _checkpoint(tmp_path, OUR_CONFIGS["attention-16"])
    pipe = DDPMPipeline.from_pretrained(export_diffusers(path, tmp_path / "exported"))
    images = pipe(batch_size=2, num_inference_steps=5, output_type="np").images
    assert images.shape == (2, 16, 16, 1)
    assert images.min() >= 0 and images.max() <= 1


# diffusers networks of several shapes, made and saved here with random weights
THEIR_CONFIGS = {
    "ddpm-cifar10-like": dict(
        sample_size=16,
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 64, 64),
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        layers_per_block=2,
        norm_num_groups=8,
        norm_eps=1e-6,
        attention_head_dim=None,
        flip_sin_to_cos=False,
        freq_shift=1,
        downsample_padding=0,  # as google/ddpm-cifar10-32
    ),
    "defaults-small": dict(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
        attention_head_dim=8,
    ),
    "class-table-no-mid-attention": dict(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        block_out_channels=(16, 48),
        down_block_types=("AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D"),
        layers_per_block=1,
        norm_num_groups=8,
        attention_head_dim=8,
        add_attention=False,
        num_class_embeds=4,
    ),
}


def _their_folder(tmp_path, name: str, scheduler=None):
    unet = _randomise(UNet2DModel(**THEIR_CONFIGS[name]), seed=5)
    folder = tmp_path / name
    pipe = DDPMPipeline(unet=unet, scheduler=scheduler or DDPMScheduler(num_train_timesteps=100))
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder, unet


@pytest.mark.parametrize("name", list(THEIR_CONFIGS))
def test_a_diffusers_folder_loads_as_the_same_network(tmp_path, name):
    folder, theirs = _their_folder(tmp_path, name)
    loaded = load_model(folder, device="cpu")
    assert loaded.config.diffusion.num_timesteps == 100
    c = loaded.config.model
    x, t, labels = _inputs(c)
    with torch.no_grad():
        expected = theirs(x, t, **labels).sample
        got = loaded.model(x, t, **labels)
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)
    # every sampler runs on it; ancestral and DDIM through the sampling pipeline
    for sampler in ("ancestral", "ddim", "dpm++2m"):
        images = generate(loaded, 2, seed=0, sampler=SamplerConfig(sampler=sampler, steps=4), progress=False)
        assert images.images.shape == (2, c.in_channels, c.image_size, c.width)
        assert torch.isfinite(images.images).all()


def test_a_bare_unet_folder_with_old_attention_names_loads(tmp_path):
    theirs = _randomise(UNet2DModel(**THEIR_CONFIGS["ddpm-cifar10-like"]), seed=2)
    old = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    state = {}
    for name, tensor in theirs.state_dict().items():
        for new, before in old.items():
            name = name.replace(f".{new}.", f".{before}.")
        state[name] = tensor.contiguous()
    folder = tmp_path / "bare"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel", **theirs.config}))
    save_file(state, folder / "diffusion_pytorch_model.safetensors")
    loaded = load_model(folder, device="cpu")
    x, t, _ = _inputs(loaded.config.model)
    with torch.no_grad():
        assert torch.allclose(loaded.model(x, t), theirs(x, t).sample, atol=1e-5, rtol=0)
    assert loaded.config.diffusion.num_timesteps == 1000  # diffusers' default scheduler


def test_the_scheduler_becomes_our_schedule_and_sampler(tmp_path):
    scheduler = DDIMScheduler(
        num_train_timesteps=200,
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        prediction_type="v_prediction",
        clip_sample=False,
    )
    folder, _ = _their_folder(tmp_path, "defaults-small", scheduler)
    loaded = load_model(folder, device="cpu")
    assert loaded.prediction_type == "v"
    assert loaded.config.sample.sampler == "ddim"
    assert loaded.config.sample.clip_x0 is False
    assert torch.allclose(
        loaded.schedule.alpha_bar.float(), scheduler.alphas_cumprod.float(), rtol=1e-5, atol=1e-7
    )


def test_a_class_table_without_a_no_label_row_gains_a_zero_one(tmp_path):
    folder, theirs = _their_folder(tmp_path, "class-table-no-mid-attention")
    loaded = load_model(folder, device="cpu")
    assert loaded.config.model.num_classes == 4
    table = loaded.model.class_embed.weight
    assert table.shape[0] == 5 and torch.equal(table[4], torch.zeros_like(table[4]))
    assert torch.equal(table[:4], theirs.class_embedding.weight)


def test_our_export_keeps_our_no_label_row(tmp_path):
    path, ours = _checkpoint(tmp_path, OUR_CONFIGS["one-head-classes"])
    folder = export_diffusers(path, tmp_path / "exported")
    config = json.loads((folder / "unet" / "config.json").read_text())
    assert config["num_class_embeds"] == 4  # three classes and the "no label" row
    assert load_model(folder).config.model.num_classes == 3


def test_the_timestep_features_match_diffusers():
    t = torch.tensor([0.0, 1.0, 17.0, 999.0])
    for cos_first in (True, False):
        for shift in (0, 1):
            ours = sinusoidal_embedding(t, 32, cos_first=cos_first, frequency_shift=shift)
            theirs = get_timestep_embedding(t, 32, flip_sin_to_cos=cos_first, downscale_freq_shift=shift)
            assert torch.allclose(ours, theirs, atol=1e-5, rtol=0)


def test_the_middle_block_order_is_a_setting_and_old_checkpoints_keep_theirs(tmp_path):
    new = UNet(UNetConfig(**OUR_CONFIGS["attention-16"]))
    assert new.mid[0].attn is not None and new.mid[1].attn is None  # ResNet → attention → ResNet
    old_config = UNetConfig(**OUR_CONFIGS["attention-16"], mid_block_order="resnet-resnet-attention")
    old = UNet(old_config)
    assert old.mid[0].attn is None and old.mid[1].attn is not None
    # a checkpoint written before the option existed (no mid_block_order) loads in the old order
    config = load_experiment_config("digits-tiny")
    config.model = old_config
    config.diffusion = replace(config.diffusion, num_timesteps=50)
    stored = to_dict(config)
    del stored["model"]["mid_block_order"]
    path = write_checkpoint(tmp_path / "old", {"ema": _randomise(old).state_dict()}, {"config": stored})
    assert load_model(path).config.model.mid_block_order == "resnet-resnet-attention"


@pytest.mark.parametrize(
    "options, why",
    [
        ({"mid_block_order": "resnet-resnet-attention"}, "middle block"),
        ({"cond_channels": 1}, "conditioned"),
        ({"channel_mult": (2, 2)}, "first level"),
        ({"norm_groups": 24}, "norm_groups"),
    ],
)
def test_networks_diffusers_cannot_express_are_refused(tmp_path, options, why):
    base = {**OUR_CONFIGS["attention-16"], "channel_mult": (1, 2), "attention_resolutions": (8,)}
    path, _ = _checkpoint(tmp_path, {**base, **options})
    with pytest.raises(UserError, match=why):
        export_diffusers(path, tmp_path / "exported")
    assert not (tmp_path / "exported").exists()


def test_mean_prediction_has_no_diffusers_form(tmp_path):
    path, _ = _checkpoint(tmp_path, OUR_CONFIGS["attention-16"], prediction_type="mu")
    with pytest.raises(UserError, match="prediction type"):
        export_diffusers(path, tmp_path / "exported")


@pytest.mark.parametrize(
    "change, why",
    [
        ({"scheduler": {"trained_betas": [0.1] * 100}}, "trained_betas"),
        ({"scheduler": {"variance_type": "learned"}}, "variance_type 'learned'"),
        ({"scheduler": {"variance_type": "learned_range"}}, "out_channels = 2 × in_channels"),
        ({"scheduler": {"beta_schedule": "exp"}}, "beta_schedule"),
        ({"unet": {"resnet_time_scale_shift": "scale_shift"}}, "resnet_time_scale_shift"),
        ({"unet": {"_class_name": "UNet2DConditionModel"}}, "UNet2DConditionModel"),
    ],
)
def test_diffusers_folders_we_cannot_read_are_named(tmp_path, change, why):
    folder, _ = _their_folder(tmp_path, "defaults-small")
    for part, entries in change.items():
        file = folder / part / ("config.json" if part == "unet" else "scheduler_config.json")
        file.write_text(json.dumps({**json.loads(file.read_text()), **entries}))
    with pytest.raises(UserError, match=why):
        load_model(folder)


def test_pickled_weights_are_refused(tmp_path):
    folder, _ = _their_folder(tmp_path, "defaults-small")
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_name("diffusion_pytorch_model.bin"))
    with pytest.raises(UserError, match="pickle"):
        load_model(folder)


def test_export_and_sample_from_the_command_line(tmp_path, capsys):
    path, _ = _checkpoint(tmp_path, OUR_CONFIGS["attention-16"])
    out = tmp_path / "pipeline"
    assert main(["export", str(path), "--format", "diffusers", "--out", str(out)]) == 0
    assert (out / "model_index.json").is_file() and (out / "scheduler" / "scheduler_config.json").is_file()
    grid = tmp_path / "grid.png"
    assert main(["sample", str(out), "--num", "2", "--steps", "3", "--out", str(grid), "--no-progress"]) == 0
    assert grid.is_file()
    assert main(["info", str(out)]) == 0
    assert "diffusers" in capsys.readouterr().out


def test_eval_of_a_diffusers_folder_compares_with_the_data_it_is_given(tmp_path, capsys):
    folder, _ = _their_folder(tmp_path, "defaults-small")
    assert main(["eval", str(folder), "--metrics", "kid", "--num", "10", "--no-progress"]) != 0
    assert "give --data" in capsys.readouterr().err
    report = tmp_path / "report.json"
    args = ["eval", str(folder), "--data", "digits", "--metrics", "nll", "--nll-num", "2", "--num", "10"]
    assert main([*args, "--no-progress", "--out", str(report)]) == 0
    bits = json.loads(report.read_text())["metrics"]["nll"]["bits_per_dim"]
    assert 0 < bits < 100


@pytest.mark.parametrize("name", ["fashion-mnist", "fashion-mnist-class", "faces"])
def test_the_shipped_pixel_models_are_diffusers_models(tmp_path, name):
    ours = load_model(name, device="cpu", channels_last=False)
    assert ours.config.model.mid_block_order == "resnet-attention-resnet"
    theirs = UNet2DModel.from_pretrained(export_diffusers(name, tmp_path / "hf") / "unet").eval()
    x, t, labels = _inputs(ours.config.model)
    with torch.no_grad():
        assert torch.allclose(theirs(x, t, **labels).sample, ours.model(x, t, **labels), atol=1e-5, rtol=0)
