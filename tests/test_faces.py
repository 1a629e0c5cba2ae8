import numpy as np
import pytest

from ddpm.cli.main import main
from ddpm.data import DataConfig, load_dataset
from ddpm.data.faces import PARTS, STYLES, face_svgs, load_faces, render_face
from ddpm.pipelines.evaluate import real_images, real_set_key


@pytest.mark.parametrize("style", list(STYLES))
def test_a_face_is_deterministic_per_seed_and_seeds_differ(style):
    assert face_svgs(style, 7) == face_svgs(style, 7)
    assert face_svgs(style, 7)[0] != face_svgs(style, 8)[0]
    a, b = render_face(style, 7, (32,))[32], render_face(style, 7, (32,))[32]
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize("style", list(STYLES))
def test_part_labels_cover_the_face(style):
    rgb, labels = render_face(style, 3, (64,))[64]
    assert labels.shape == (64, 64) and labels.max() < len(PARTS)
    background = rgb[0, 0]  # corners are background in every style
    is_bg_colour = np.abs(rgb.astype(int) - background).sum(-1) < 12
    # pixels labelled background look like the background, and the face's pixels carry a part
    assert is_bg_colour[labels == 0].mean() > 0.93  # anti-aliased outlines blend at the edges
    assert (labels[~is_bg_colour] != 0).mean() > 0.9
    present = {PARTS[i] for i in np.unique(labels)}
    assert {"background", "skin", "hair"} <= present and present & {"eyes", "eyebrows", "mouth"}


def test_build_and_load_through_the_cli(tmp_path, capsys):
    out = tmp_path / "faces"
    assert main(["data", "faces", "--num", "12", "--out", str(out), "--workers", "1", "--sizes", "32"]) == 0
    images, labels, style = load_faces(out, 32, "train")
    assert images.shape == (10, 32, 32, 3) and labels.shape == (10, 32, 32)
    assert (out / "README.md").read_text().count("licence") >= len(STYLES)
    ds = load_dataset(DataConfig(dataset="faces", path=str(out), image_size=32, split="test"))
    assert ds.images.shape == (2, 3, 32, 32) and ds.class_names == tuple(STYLES)
    # FID's reference set is the held-out split, its floor the training split
    config = DataConfig(dataset="faces", path=str(out), image_size=32)
    held_out = real_images(config, "test", 2)
    assert sorted(map(bytes, held_out.numpy())) == sorted(map(bytes, ds.images.numpy()))
    assert real_images(config, "train", 10).shape == (10, 3, 32, 32)
    # cached real features belong to one build: another build gets another key
    key = real_set_key(config, 2)
    assert key.startswith("faces-32-2-") and real_set_key(config, 2) == key
    other = tmp_path / "other"
    assert (
        main(
            [
                "data",
                "faces",
                "--num",
                "12",
                "--out",
                str(other),
                "--workers",
                "1",
                "--sizes",
                "32",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    assert real_set_key(DataConfig(dataset="faces", path=str(other), image_size=32), 2) != key
    assert real_set_key(DataConfig(dataset="digits", image_size=8), 2) == "digits-8-2"
    assert main(["data", "faces", "--num", "2", "--out", str(out), "--styles", "nobody"]) == 2
    assert "unknown face style" in capsys.readouterr().err
    with pytest.raises(Exception, match="ddpm data faces"):
        load_faces(tmp_path / "missing", 32)
