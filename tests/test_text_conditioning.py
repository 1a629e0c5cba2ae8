"""Text to image: the emoji data set builder, caption encoding and cross-attention through the CLI."""

import json

import numpy as np
import pytest

from ddpm.cli.main import main
from ddpm.data.emoji import caption, load_emoji
from tests.helpers import fake_emoji_package


@pytest.fixture(scope="module")
def fake_package(tmp_path_factory):
    return fake_emoji_package(tmp_path_factory.mktemp("pkg"))


def test_captions_and_build(fake_package, tmp_path):
    assert caption("SMILING FACE WITH SUNGLASSES") == "smiling face with sunglasses"
    assert caption("THUMBS UP SIGN", "dark skin tone") == "thumbs up sign, dark skin tone"
    out = tmp_path / "emoji"
    assert main(["data", "emoji", "--source", str(fake_package), "--out", str(out), "--sizes", "16"]) == 0
    images, captions, _ = load_emoji(out, 16, "all")
    assert images.shape == (8, 16, 16, 3) and "large red circle" in captions
    assert np.all(images[:, 0, 0] == 255)  # transparent background composited on white


def test_text_conditional_train_and_sample(fake_package, tmp_path, capsys):
    data = tmp_path / "emoji"
    assert main(["data", "emoji", "--source", str(fake_package), "--out", str(data), "--sizes", "16"]) == 0
    run = tmp_path / "run"
    args = "--config emoji-text-tiny --data.split all --train.steps 20 --train.batch_size 8 --no-progress"
    assert main(["train", *args.split(), "--out", str(run), "--data.path", str(data)]) == 0
    meta = json.loads((run / "checkpoints" / "step-0000020" / "checkpoint.json").read_text())
    assert meta["text_encoder"]["name"] == "all-MiniLM-L6-v2"
    out = tmp_path / "prompted.png"
    prompts = ["--prompt", "large red circle", "--prompt", "large blue square"]
    rest = ["--guidance", "4", "--num", "4", "--steps", "5", "--no-progress"]
    assert main(["sample", str(run), *prompts, *rest, "--out", str(out)]) == 0
    assert out.is_file()
    capsys.readouterr()
    assert main(["sample", "fashion-mnist", "--prompt", "a bag", "--out", str(tmp_path / "x.png")]) == 2
    assert "not trained with captions" in capsys.readouterr().err
