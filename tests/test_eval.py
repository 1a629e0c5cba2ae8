import numpy as np
import pytest
import torch
from scipy import linalg

from ddpm.eval import frechet_distance, gaussian_stats
from ddpm.eval.domain_classifier import SmallCNN


def _random_cov(rng, d):
    a = rng.normal(size=(d, d + 5))
    return a @ a.T / d


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    d = 12
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    c1, c2 = _random_cov(rng, d), _random_cov(rng, d)
    reference = (mu1 - mu2) @ (mu1 - mu2) + np.trace(c1 + c2 - 2 * linalg.sqrtm(c1 @ c2).real)
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(reference, rel=1e-9)


def test_frechet_distance_closed_form_for_commuting_covariances():
    # diagonal covariances: d² = ‖Δμ‖² + Σ (σ₁ − σ₂)²
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    expected = 5 + ((np.sqrt(s1) - np.sqrt(s2)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected)


def test_same_set_is_zero_and_distance_grows_with_noise():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 8)) @ rng.normal(size=(8, 8))
    stats = gaussian_stats(x)
    assert abs(frechet_distance(*stats, *stats)) < 1e-8
    distances = [
        frechet_distance(*stats, *gaussian_stats(x + s * rng.normal(size=x.shape))) for s in (0.1, 0.5, 1, 2)
    ]
    assert all(a < b for a, b in zip(distances, distances[1:], strict=False))


def test_domain_classifier_shapes():
    model = SmallCNN().eval()
    x = torch.randn(3, 1, 32, 32)
    assert model.features(x).shape == (3, 128) and model(x).shape == (3, 10)


def test_domain_classifier_loads_from_a_given_folder(tmp_path):
    from ddpm.checkpoints import write_checkpoint
    from ddpm.eval.domain_classifier import VERSION, load_domain_classifier

    model = SmallCNN()
    write_checkpoint(tmp_path / VERSION, {"model": model.state_dict()}, {"test_accuracy": 0.5})
    loaded = load_domain_classifier(tmp_path, progress=False)
    x = torch.randn(2, 1, 32, 32)
    assert loaded.test_accuracy == 0.5 and loaded.path == tmp_path / VERSION
    assert torch.equal(loaded.features_and_logits(x)[1], model.eval()(x))


def test_domain_classifier_ships_with_the_package(tmp_path, monkeypatch):
    """The default classifier is the packaged one: nothing is trained, nothing cached."""
    from ddpm.eval import domain_classifier as dc

    def no_training(*args, **kwargs):
        raise AssertionError("the shipped domain classifier should be loaded, not trained")

    monkeypatch.setattr(dc, "train_domain_classifier", no_training)
    monkeypatch.setenv("DDPM_CACHE", str(tmp_path))
    loaded = dc.load_domain_classifier(progress=False)
    assert loaded.path == dc.PACKAGED and loaded.test_accuracy > 0.9
    assert not any(tmp_path.iterdir())


def test_kid_matches_brute_force_mmd():
    from ddpm.eval.kid import kernel_distance, mmd2_unbiased

    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 4)), rng.normal(0.5, 1.0, size=(25, 4))

    def k(a, b):
        return (a @ b / 4 + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(30) for j in range(30) if i != j) / (30 * 29)
    yy = sum(k(y[i], y[j]) for i in range(25) for j in range(25) if i != j) / (25 * 24)
    xy = sum(k(x[i], y[j]) for i in range(30) for j in range(25)) / (30 * 25)
    assert mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)
    # unbiased: over independent pairs of samples of one distribution the estimate averages to 0
    draws = np.array([mmd2_unbiased(rng.normal(size=(60, 4)), rng.normal(size=(60, 4))) for _ in range(300)])
    assert abs(draws.mean()) < 4 * draws.std() / np.sqrt(len(draws))
    a, b = rng.normal(size=(400, 4)), rng.normal(size=(400, 4))
    shifted, sd = kernel_distance(a, b + 0.5, subsets=20, subset_size=200)
    same, _ = kernel_distance(a, b, subsets=20, subset_size=200)
    assert shifted > same + 3 * sd


def test_precision_recall_on_toy_sets():
    from ddpm.eval.precision_recall import knn_radii, precision_recall

    rng = np.random.default_rng(3)
    real = rng.normal(size=(500, 2))
    # identical distributions: both near 1
    p, r = precision_recall(real, rng.normal(size=(500, 2)))
    assert p > 0.9 and r > 0.9
    # fakes collapsed onto one mode near the centre: high precision, low recall (mode collapse)
    p, r = precision_recall(real, 0.05 * rng.normal(size=(500, 2)))
    assert p > 0.95 and r < 0.2
    # fakes far away: neither
    p, r = precision_recall(real, rng.normal(size=(500, 2)) + 20)
    assert p == 0.0 and r == 0.0
    # radius of the k-th neighbour on a line of unit spacing
    line = np.arange(10, dtype=np.float64)[:, None]
    assert knn_radii(line, k=3)[0] == 9.0 and knn_radii(line, k=3)[5] == 4.0


@pytest.mark.slow
def test_fid_with_inception_is_zero_on_itself_and_grows_with_noise():
    from ddpm.data import load_digits
    from ddpm.eval.inception import InceptionFeatures

    images = load_digits(32).images[:40]
    net = InceptionFeatures()
    base = gaussian_stats(net(images, progress=False))
    assert abs(frechet_distance(*base, *base)) < 1e-3  # 40 points in 2048-d: a rank-deficient Σ
    g = torch.Generator().manual_seed(0)
    fids = []
    for sigma in (10, 40, 100):
        noisy = (
            (images.float() + sigma * torch.randn(images.shape, generator=g)).clamp(0, 255).to(torch.uint8)
        )
        fids.append(frechet_distance(*base, *gaussian_stats(net(noisy, progress=False))))
    assert 0 < fids[0] < fids[1] < fids[2]


def _digits_model(tmp_path):
    from ddpm.models import UNet
    from ddpm.pipelines.loading import LoadedModel
    from ddpm.schedules import make_schedule

    from .helpers import tiny_config

    config = tiny_config()
    model = UNet(config.model).eval()
    return LoadedModel(
        model=model, config=config, schedule=make_schedule(config.diffusion), meta={}, path=tmp_path
    )


def test_a_metric_is_one_registry_entry_fed_the_inputs_it_names(tmp_path, monkeypatch):
    """A new entry in METRICS is accepted, reported, and reads samples / test reference / train
    floor features in its space; unchosen metrics (nll) are not run."""
    import ddpm.pipelines.evaluate as ev
    from ddpm.eval.features import FeatureSpace
    from ddpm.pipelines.metrics import METRICS, Metric

    def features(x):
        return x.double().flatten(1).numpy() / 255

    def mean_gap(f):
        return {"value": float(np.abs(f.fake.mean(0) - f.real.mean(0)).sum()), "floor": f.floor.mean()}

    def fail(*args):
        raise AssertionError("a metric that was not chosen ran")

    monkeypatch.setenv("DDPM_CACHE", str(tmp_path))
    monkeypatch.setattr(ev, "inception_space", lambda progress: FeatureSpace("inception", "stub", features))
    monkeypatch.setitem(
        METRICS, "mean-gap", Metric(help="h", reads="features", space="inception", measure=mean_gap)
    )
    monkeypatch.setitem(METRICS, "nll", Metric(help="h", reads="model", measure=fail))
    loaded = _digits_model(tmp_path)
    samples = torch.randint(
        0, 256, (12, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    config = ev.EvalConfig(metrics=("mean-gap", "fid"), num=12, progress=False)
    report = ev.evaluate(loaded, config, samples)
    fake = features(samples)
    real = features(ev.real_images(loaded.config.data, "test", 12))
    floor = features(ev.real_images(loaded.config.data, "train", 12))
    assert list(report["metrics"]) == ["fid", "mean-gap"]  # registry order
    assert report["metrics"]["mean-gap"]["value"] == pytest.approx(np.abs(fake.mean(0) - real.mean(0)).sum())
    assert report["metrics"]["mean-gap"]["floor"] == pytest.approx(floor.mean())
    fid = report["metrics"]["fid"]
    assert fid["value"] == pytest.approx(frechet_distance(*gaussian_stats(fake), *gaussian_stats(real)))
    assert fid["floor"] == pytest.approx(frechet_distance(*gaussian_stats(floor), *gaussian_stats(real)))
    assert set(report["timings_seconds"]) == {"inception_metrics"}


def test_eval_help_and_choices_come_from_the_registry():
    import argparse

    from ddpm.cli.evaluate import add_parser
    from ddpm.errors import UserError
    from ddpm.pipelines.evaluate import EvalConfig
    from ddpm.pipelines.metrics import METRICS

    sub = argparse.ArgumentParser().add_subparsers()
    add_parser(sub)
    help_text = sub.choices["eval"].format_help()
    assert all(f"{name:10s} {m.help}" in help_text for name, m in METRICS.items())
    with pytest.raises(UserError, match="choose from " + ", ".join(METRICS)):
        EvalConfig(metrics=("nope",))
    with pytest.raises(TypeError):
        EvalConfig(("fid",), 100)  # keywords only
