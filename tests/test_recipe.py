"""The training recipe's choices: EDM preconditioning, loss weightings, noise levels, EMA kinds and
post-hoc EMA, each against an independent computation."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from ddpm.configuration import to_dict
from ddpm.errors import UserError
from ddpm.models.denoiser import model_denoiser
from ddpm.models.preconditioning import NOISE_INPUT_SCALE, EDMPreconditioned
from ddpm.pipelines import load_model
from ddpm.process import q_sample
from ddpm.process.config import DiffusionConfig
from ddpm.process.edm import edm_coefficients, edm_loss_weight
from ddpm.process.parameterization import split_prediction
from ddpm.samplers import SamplerConfig, sample
from ddpm.schedules import make_schedule, sigma_to_timestep, timestep_to_sigma
from ddpm.training import TrainingRun, train
from ddpm.training.ema import EMA, gamma_to_sigma_rel, power_ema_beta, power_profile, sigma_rel_to_gamma
from ddpm.training.loss_weights import image_weights, target_loss_weight, x0_error_scale
from ddpm.training.noise_levels import log_normal_sigmas, log_normal_timesteps, training_noise
from ddpm.training.objective import denoising_loss
from ddpm.training.post_hoc_ema import combine_snapshots, post_hoc_coefficients, reconstruct_ema
from ddpm.validation import InvalidValue
from tests.helpers import digits_images, tiny_config

SCHEDULE = make_schedule(DiffusionConfig(num_timesteps=100, beta_end=0.2))


# -- EDM preconditioning ---------------------------------------------------------------------------
@pytest.mark.parametrize("sigma", [0.002, 0.1, 0.5, 2.0, 80.0])
def test_edm_coefficients_follow_table_1(sigma):
    """c_skip, c_out, c_in, c_noise of EDM Table 1 at σ_data = 0.5, written out by hand, and the
    properties they were chosen for: λ c_out² = 1, c_skip + c_out²/σ_d² = 1."""
    sd = 0.5
    c_skip, c_out, c_in, c_noise = (
        float(c) for c in edm_coefficients(torch.tensor(sigma, dtype=torch.float64), sd)
    )
    assert c_skip == pytest.approx(0.25 / (sigma**2 + 0.25), rel=1e-12)
    assert c_out == pytest.approx(sigma * 0.5 / math.sqrt(sigma**2 + 0.25), rel=1e-12)
    assert c_in == pytest.approx(1 / math.sqrt(sigma**2 + 0.25), rel=1e-12)
    assert c_noise == pytest.approx(math.log(sigma) / 4, rel=1e-12)
    assert float(edm_loss_weight(torch.tensor(sigma, dtype=torch.float64), sd)) * c_out**2 == pytest.approx(
        1, rel=1e-12
    )
    assert c_skip + c_out**2 / sd**2 == pytest.approx(1, rel=1e-12)


def test_edm_preconditioning_makes_input_and_target_unit_variance():
    """With data of standard deviation σ_d, c_in x and the raw network's target (x_0 − c_skip x)/c_out
    have unit variance at every σ (the reason for the coefficients, EDM App. B.6)."""
    gen = torch.Generator().manual_seed(0)
    sd = 0.5
    x0 = sd * torch.randn(200_000, generator=gen, dtype=torch.float64)
    for sigma in (0.01, 0.3, 1.0, 10.0):
        x = x0 + sigma * torch.randn(200_000, generator=gen, dtype=torch.float64)
        c_skip, c_out, c_in, _ = edm_coefficients(torch.tensor(sigma, dtype=torch.float64), sd)
        assert (c_in * x).std().item() == pytest.approx(1, abs=0.01)
        assert ((x0 - c_skip * x) / c_out).std().item() == pytest.approx(1, abs=0.01)


class _IdealRawNetwork(torch.nn.Module):
    """F such that D(x; σ) = s²/(s² + σ²) x, the exact denoiser of N(0, s²) data, recovering σ from
    the noise input and x from c_in x: a stand-in network that tests the wrapper's plumbing."""

    def __init__(self, data_std: float, sigma_data: float):
        super().__init__()
        self.s, self.sd = data_std, sigma_data
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, scaled_x, noise_input):
        sigma = torch.exp(noise_input.double() * 4 / NOISE_INPUT_SCALE)
        c_skip, c_out, c_in, _ = edm_coefficients(sigma, self.sd)
        shape = (-1, 1, 1, 1)
        x = scaled_x.double() / c_in.reshape(shape)
        ideal = self.s**2 / (self.s**2 + sigma.reshape(shape) ** 2) * x
        return ((ideal - c_skip.reshape(shape) * x) / c_out.reshape(shape)).float()


@pytest.mark.parametrize("t", [0.0, 3.0, 37.5, 99.0])
def test_edm_wrapper_is_the_exact_denoiser_on_gaussian_data(t):
    """Around the ideal F the wrapper, asked as a VP x_0 model at timestep t (also fractional),
    returns E[x_0 | x_t] = √ᾱ s² / (ᾱ s² + 1 − ᾱ) x_t for x_0 ~ N(0, s²)."""
    s = 0.7
    model = EDMPreconditioned(_IdealRawNetwork(s, sigma_data=0.5), SCHEDULE, sigma_data=0.5)
    xt = torch.randn(4, 1, 5, 5, generator=torch.Generator().manual_seed(1))
    sigma = float(timestep_to_sigma(torch.tensor([t]), SCHEDULE))
    alpha_bar = 1 / (1 + sigma**2)
    expected = math.sqrt(alpha_bar) * s**2 / (alpha_bar * s**2 + 1 - alpha_bar) * xt
    got = model(xt, torch.full((4,), t, dtype=torch.float64))
    assert torch.allclose(got, expected, atol=1e-5)
    # at an integer step the VP pair is the schedule's own
    if t == int(t):
        assert sigma == pytest.approx(float(SCHEDULE.sigmas[int(t)]), rel=1e-12)


def test_edm_config_rules():
    with pytest.raises(InvalidValue, match="prediction_type"):
        DiffusionConfig(preconditioning="edm")  # predicts x0 only
    with pytest.raises(InvalidValue, match="zero_terminal_snr"):
        DiffusionConfig(preconditioning="edm", prediction_type="x0", zero_terminal_snr=True)
    with pytest.raises(InvalidValue, match="sigma_data"):
        DiffusionConfig(sigma_data=0.0)


# -- noise levels and continuous time ----------------------------------------------------------------
def test_fractional_timesteps_round_trip_and_agree_at_the_steps():
    sigmas = torch.logspace(-1.5, 1.5, 50, dtype=torch.float64) * float(SCHEDULE.sigmas[0]) / 0.03
    sigmas = sigmas.clamp(float(SCHEDULE.sigmas[0]), float(SCHEDULE.sigmas[-1]))
    t = sigma_to_timestep(sigmas, SCHEDULE)
    assert torch.allclose(timestep_to_sigma(t, SCHEDULE), sigmas, rtol=1e-10)
    x0 = torch.randn(3, 1, 4, 4)
    eps = torch.randn(3, 1, 4, 4)
    steps = torch.tensor([0, 40, 99])
    assert torch.allclose(
        q_sample(x0, steps, SCHEDULE, eps), q_sample(x0, steps.double(), SCHEDULE, eps), atol=1e-6
    )


def test_log_normal_sigmas_have_edm_moments_and_map_inside_the_schedule():
    gen = torch.Generator().manual_seed(0)
    log_sigma = log_normal_sigmas(100_000, -1.2, 1.2, gen).log()
    assert log_sigma.mean().item() == pytest.approx(-1.2, abs=0.02)
    assert log_sigma.std().item() == pytest.approx(1.2, abs=0.02)
    t = log_normal_timesteps(10_000, SCHEDULE, -1.2, 1.2, gen)
    assert t.dtype == torch.float64 and t.min() >= 0 and t.max() <= 99
    assert (t != t.round()).float().mean() > 0.9  # continuous, not the discrete steps


def test_uniform_noise_levels_draw_what_they_always_drew():
    """The default draws are DDPM Algorithm 1's, in the same order (t, then ε) as before."""
    x0 = torch.zeros(8, 1, 4, 4)
    t, eps = training_noise(x0, SCHEDULE, torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    assert torch.equal(t, torch.randint(0, 100, (8,), generator=gen))
    assert torch.equal(eps, torch.randn(x0.shape, generator=gen))


# -- loss weightings ---------------------------------------------------------------------------------
def test_loss_weights_match_hand_computation():
    snr = torch.tensor([0.01, 1.0, 4.0, 100.0], dtype=torch.float64)
    expect = {
        ("min-snr", "eps"): [1.0, 1.0, 1.0, 0.05],  # min(SNR, 5)/SNR
        ("min-snr", "x0"): [0.01, 1.0, 4.0, 5.0],
        ("min-snr", "v"): [0.01 / 1.01, 0.5, 0.8, 5 / 101],
        ("edm", "x0"): [4.01, 5.0, 8.0, 104.0],  # (σ² + ¼)/(σ²/4) = 4 + SNR at σ_d = ½
        ("edm", "eps"): [401.0, 5.0, 2.0, 1.04],
        ("snr+1", "v"): [1.0, 1.0, 1.0, 1.0],
        ("snr+1", "eps"): [101.0, 2.0, 1.25, 1.01],
        ("simple", "eps"): [1.0, 1.0, 1.0, 1.0],
    }
    for (weighting, prediction), values in expect.items():
        got = target_loss_weight(snr, weighting, prediction, gamma=5.0, sigma_data=0.5)
        assert torch.allclose(got, torch.tensor(values, dtype=torch.float64), rtol=1e-12), (
            weighting,
            prediction,
        )


@pytest.mark.parametrize("prediction_type", ["eps", "v", "x0"])
@pytest.mark.parametrize("weighting", ["min-snr", "edm", "snr+1"])
def test_weighted_loss_is_the_weighted_x0_error(prediction_type, weighting):
    """For any network output, the weighted loss on the target equals w(SNR)‖x̂_0 − x_0‖² with x̂_0
    implied by that output: the scale relations ‖ε̂−ε‖² = SNR‖x̂_0−x_0‖², ‖v̂−v‖² = (SNR+1)‖…‖²."""
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(6, 1, 4, 4, generator=gen, dtype=torch.float64)
    eps = torch.randn(6, 1, 4, 4, generator=gen, dtype=torch.float64)
    t = torch.tensor([0.0, 5.5, 20.0, 50.25, 80.0, 99.0], dtype=torch.float64)
    output = torch.randn(6, 1, 4, 4, generator=gen, dtype=torch.float64)
    weights = image_weights(t, SCHEDULE, weighting, prediction_type)
    loss = denoising_loss(lambda xt, tt: output, x0, t, eps, SCHEDULE, prediction_type, weights.double())
    sigma = timestep_to_sigma(t, SCHEDULE)
    alpha, sigma_vp = 1 / (1 + sigma**2).sqrt(), sigma / (1 + sigma**2).sqrt()
    xt = alpha.reshape(-1, 1, 1, 1) * x0 + sigma_vp.reshape(-1, 1, 1, 1) * eps
    x0_hat, _ = split_prediction(
        output, xt, alpha.reshape(-1, 1, 1, 1), sigma_vp.reshape(-1, 1, 1, 1), prediction_type
    )
    snr = 1 / sigma**2
    w = {"min-snr": snr.clamp(max=5.0), "edm": 4 + snr, "snr+1": snr + 1}[weighting]
    expected = (w.reshape(-1, 1, 1, 1) * (x0_hat - x0) ** 2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.allclose(x0_error_scale(snr, "x0"), torch.ones(6, dtype=torch.float64))


def test_vlb_weighting_needs_discrete_steps():
    with pytest.raises(InvalidValue, match="noise_levels"):
        replace(tiny_config().train, loss_weighting="vlb", noise_levels="log-normal")
    with pytest.raises(ValueError, match="discrete"):
        image_weights(torch.tensor([1.5]), SCHEDULE, "vlb", "eps")


# -- EMA ---------------------------------------------------------------------------------------------
def test_sigma_rel_and_gamma_match_edm2():
    assert sigma_rel_to_gamma(0.05) == pytest.approx(16.97, abs=0.01)
    assert sigma_rel_to_gamma(0.10) == pytest.approx(6.94, abs=0.01)
    for gamma in (0.5, 3.0, 12.0, 40.0):
        assert sigma_rel_to_gamma(gamma_to_sigma_rel(gamma)) == pytest.approx(gamma, rel=1e-9)
    # the profile after many updates has the relative width σ_rel
    w = power_profile(20_000, 6.94)
    tau = np.arange(1, 20_001) / 20_000
    width = math.sqrt((w * tau**2).sum() - (w * tau).sum() ** 2)
    assert width == pytest.approx(0.10, rel=0.01)


def test_power_ema_matches_its_closed_form_on_a_scalar_sequence():
    gamma = sigma_rel_to_gamma(0.1)
    values = torch.randn(500, generator=torch.Generator().manual_seed(0), dtype=torch.float64).cumsum(0)
    net = torch.nn.Linear(1, 1, bias=False).double()
    ema = EMA(net, 0.0, "power", 0.1)
    for step, v in enumerate(values):
        net.weight.data.fill_(float(v))
        ema.update(net, step)
    closed = float((torch.from_numpy(power_profile(500, gamma)) * values).sum())
    assert float(ema.model.weight) == pytest.approx(closed, rel=1e-9)
    assert power_ema_beta(0, gamma) == 0.0  # the first update takes the weights as they are


def test_fixed_and_warmup_ema_decays():
    net = torch.nn.Linear(1, 1)
    assert EMA(net, 0.99, "fixed").decay_at(0) == 0.99
    assert EMA(net, 0.99, "warmup").decay_at(0) == 0.1


def test_post_hoc_ema_reconstructs_a_directly_tracked_ema():
    """Snapshots of the σ_rel 0.05 and 0.10 EMAs every 100 of 2,000 steps rebuild the σ_rel 0.075
    EMA at the end to a small fraction of how far the raw weights wander."""
    steps, every = 2000, 100
    gen = torch.Generator().manual_seed(0)
    path = torch.randn(steps, 8, generator=gen, dtype=torch.float64).cumsum(0)  # a random walk of weights
    net = torch.nn.Linear(8, 1, bias=False).double()
    tracked = {s: EMA(net, 0.0, "power", s) for s in (0.05, 0.10, 0.075)}
    snapshots, states = [], []
    for step in range(steps):
        net.weight.data.copy_(path[step][None])
        for ema in tracked.values():
            ema.update(net, step)
        if (step + 1) % every == 0:
            for s in (0.05, 0.10):
                snapshots.append((step + 1, sigma_rel_to_gamma(s)))
                states.append({"w": tracked[s].model.weight.detach().clone()})
    x = post_hoc_coefficients(snapshots, sigma_rel_to_gamma(0.075), steps)
    rebuilt = combine_snapshots(states, x)["w"]
    direct = tracked[0.075].model.weight
    spread = (path[-200:] - path[-200:].mean(0)).abs().mean()
    assert (rebuilt - direct).abs().max() < 0.02 * spread
    # and the snapshot of a tracked width is reproduced exactly
    x = post_hoc_coefficients(snapshots, sigma_rel_to_gamma(0.10), steps)
    assert torch.allclose(combine_snapshots(states, x)["w"], tracked[0.10].model.weight, atol=1e-6)


# -- training with the recipe -------------------------------------------------------------------------
def _run(tmp_path, diffusion=None, **train):
    c = tiny_config(steps=30, checkpoint_every=15, **train)
    if diffusion:
        c.diffusion = replace(c.diffusion, **diffusion)
    return TrainingRun(
        model=c.model, diffusion=c.diffusion, train=c.train, sample=c.sample, full_config=to_dict(c)
    )


def test_an_edm_model_trains_samples_and_keeps_its_snapshots(tmp_path):
    """EDM preconditioning + log-normal σ + λ(σ) + power EMA with snapshots: the loss falls, the
    saved model loads as the wrapper and every kind of sampler runs it; 'ema' snapshots rebuild."""
    run = _run(
        tmp_path,
        {"preconditioning": "edm", "prediction_type": "x0"},
        noise_levels="log-normal",
        loss_weighting="edm",
        ema="power",
        ema_sigma_rel=0.1,
        ema_snapshot_every=10,
        lr=2e-3,
    )
    train(run, digits_images(256), tmp_path, progress=False)
    losses = [r["loss"] for r in map(eval_json, (tmp_path / "log.jsonl").read_text().splitlines())]
    assert losses[-1] < losses[0]
    loaded = load_model(tmp_path)
    assert isinstance(loaded.model, EDMPreconditioned)
    from ddpm.cli.main import main

    assert main(["info", str(tmp_path)]) == 0  # the wrapper answers for its network's blocks
    noise = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    for name in ("ancestral", "ddim", "dpm++2m", "heun"):
        config = SamplerConfig(sampler=name, steps=8)
        x = sample(config, model_denoiser(loaded.model), noise, loaded.schedule, "x0", torch.Generator())
        assert torch.isfinite(x).all(), name
    weights, meta, x = reconstruct_ema(tmp_path, 0.1)
    assert meta["step"] == 30 and len(x) == 6
    ckpt = sorted((tmp_path / "checkpoints").glob("step-*"))[-1]
    from ddpm.checkpoints import read_tensors

    direct = read_tensors(ckpt, "ema")  # the run's own EMA is the σ_rel 0.1 power EMA
    assert all(k.startswith("net.") for k in direct)
    assert max((weights[k] - direct[k]).abs().max().item() for k in direct) < 1e-4


def eval_json(line):
    import json

    return json.loads(line)


def test_a_power_ema_run_resumes_exactly(tmp_path):
    whole = _run(
        tmp_path, ema="power", ema_snapshot_every=10, loss_weighting="min-snr", noise_levels="log-normal"
    )
    train(whole, digits_images(128), tmp_path / "whole", progress=False)
    half = _run(
        tmp_path, ema="power", ema_snapshot_every=10, loss_weighting="min-snr", noise_levels="log-normal"
    )
    half.train = replace(half.train, time_limit_minutes=0)
    first = replace(half.train, steps=15)
    train(replace(half, train=first), digits_images(128), tmp_path / "split", progress=False)
    train(half, digits_images(128), tmp_path / "split", resume=True, progress=False)
    from ddpm.checkpoints import read_tensors

    a = sorted((tmp_path / "whole" / "checkpoints").glob("step-*"))[-1]
    b = sorted((tmp_path / "split" / "checkpoints").glob("step-*"))[-1]
    for group in ("model", "ema", "ema-power-0.050", "ema-power-0.100"):
        ta, tb = read_tensors(a, group), read_tensors(b, group)
        assert all(torch.equal(ta[k], tb[k]) for k in ta), group
    assert sorted(p.name for p in (tmp_path / "split" / "ema-snapshots").iterdir()) == [
        "step-0000010",
        "step-0000020",
        "step-0000030",
    ]


def test_recipe_refuses_meaningless_combinations(tmp_path):
    run = _run(tmp_path, {"prediction_type": "mu"}, loss_weighting="min-snr")
    with pytest.raises(UserError, match="mean-predicting"):
        train(run, digits_images(64), tmp_path / "a", progress=False)
    assert not (tmp_path / "a").exists()


def test_ddpm_ema_writes_a_checkpoint_of_the_chosen_width(tmp_path, capsys):
    from ddpm.checkpoints import read_meta
    from ddpm.cli.main import main

    run = _run(tmp_path, ema_snapshot_every=10)
    train(run, digits_images(128), tmp_path / "run", progress=False)
    assert main(["ema", str(tmp_path / "run"), "--sigma-rel", "0.08", "--out", str(tmp_path / "e08")]) == 0
    meta = read_meta(tmp_path / "e08")
    assert meta["ema"]["sigma_rel"] == 0.08 and meta["state"]["step"] == 30
    loaded = load_model(tmp_path / "e08")
    assert loaded.config.model == run.model
    # --step picks an earlier snapshot; bad input is one line and writes nothing
    assert (
        main(
            ["ema", str(tmp_path / "run"), "--sigma-rel", "0.1", "--step", "20", "--out", str(tmp_path / "e")]
        )
        == 0
    )
    assert read_meta(tmp_path / "e")["state"]["step"] == 20
    capsys.readouterr()
    plain = _run(tmp_path)
    train(plain, digits_images(64), tmp_path / "plain", progress=False)
    for args, message in [
        ([str(tmp_path / "plain"), "--sigma-rel", "0.1"], "ema_snapshot_every"),
        ([str(tmp_path / "run"), "--sigma-rel", "0.5"], "--sigma-rel must be"),
        ([str(tmp_path / "nowhere"), "--sigma-rel", "0.1"], "no run folder"),
    ]:
        assert main(["ema", *args, "--out", str(tmp_path / "x")]) != 0
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "x").exists()


def test_checkpoints_every_few_minutes_of_training(tmp_path):
    """train.checkpoint_every_minutes saves whenever a multiple of the interval of training time is
    passed (here an interval shorter than any step: a checkpoint after every step)."""
    run = _run(tmp_path, checkpoint_every_minutes=1e-7, keep_checkpoints=0)
    run.train = replace(run.train, steps=6, checkpoint_every=1000)
    train(run, digits_images(64), tmp_path / "run", progress=False)
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("step-*"))
    assert names == [f"step-{i:07d}" for i in range(1, 7)]
