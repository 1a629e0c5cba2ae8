"""``train.init_from``: a run that starts from another model's weights, the middle block's order
converted when it differs."""

import pytest
import torch

from ddpm.checkpoints import read_tensors
from ddpm.configuration import to_dict
from ddpm.errors import UserError
from ddpm.models import UNet
from ddpm.models.unet import reorder_mid_block
from ddpm.pipelines import run_training
from ddpm.pipelines.experiment import ExperimentConfig
from ddpm.pipelines.fine_tuning import initial_weights

from .helpers import tiny_config

OLD, NEW = "resnet-resnet-attention", "resnet-attention-resnet"


def _config(order: str, **train) -> ExperimentConfig:
    config = tiny_config(steps=3, batch_size=8, checkpoint_every=3, **train)
    config.model.mid_block_order = order
    config.model.mid_attention = True
    return config


def _trained(tmp_path, order: str):
    run_training(_config(order), tmp_path / "source", progress=False)
    return tmp_path / "source"


def test_reordering_moves_the_attention_and_back():
    config = _config(OLD).model
    old = UNet(config).state_dict()
    new = reorder_mid_block(old, OLD, NEW)
    config.mid_block_order = NEW
    UNet(config).load_state_dict(new)  # every name and shape fits the other order
    assert any(k.startswith("mid.0.attn.") for k in new) and not any(k.startswith("mid.1.attn.") for k in new)
    back = reorder_mid_block(new, NEW, OLD)
    assert back.keys() == old.keys() and all(torch.equal(back[k], old[k]) for k in old)


def test_a_run_starts_from_the_weights_it_is_given(tmp_path):
    source = _trained(tmp_path, NEW)
    start = read_tensors(sorted((source / "checkpoints").glob("step-*"))[-1], "ema")
    config = _config(NEW, init_from=str(source), lr=1e-30, warmup_steps=0)
    run_training(config, tmp_path / "tuned", progress=False)
    # a vanishing learning rate: the weights stay the starting ones (and not a fresh network's)
    tuned = read_tensors(sorted((tmp_path / "tuned" / "checkpoints").glob("step-*"))[-1], "model")
    assert all(torch.allclose(tuned[k], start[k], atol=1e-20, rtol=0) for k in start)
    assert any(start[k].abs().max() > 0 for k in start if k.startswith("out_conv"))


def test_a_model_in_the_old_order_starts_a_run_in_the_new_one(tmp_path):
    source = _trained(tmp_path, OLD)
    weights = initial_weights(str(source), _config(NEW).model)
    old = read_tensors(sorted((source / "checkpoints").glob("step-*"))[-1], "ema")
    assert torch.equal(weights["mid.0.attn.q.weight"], old["mid.1.attn.q.weight"])
    assert torch.equal(weights["mid.1.res.conv1.weight"], old["mid.1.res.conv1.weight"])


def test_another_network_is_refused_by_name(tmp_path):
    source = _trained(tmp_path, NEW)
    config = _config(NEW, init_from=str(source))
    config.model.base_channels *= 2
    with pytest.raises(UserError, match="model.base_channels"):
        run_training(config, tmp_path / "tuned", progress=False)
    assert not (tmp_path / "tuned").exists()


def test_init_from_is_for_diffusion_models(tmp_path):
    config = ExperimentConfig()
    data = to_dict(config)
    data["train"].update(objective="baseline", init_from="fashion-mnist")
    from ddpm.pipelines import load_experiment_config

    with pytest.raises(UserError, match="starts fresh"):
        run_training(load_experiment_config(data), tmp_path / "b", progress=False)
