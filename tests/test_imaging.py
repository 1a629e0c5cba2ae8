import torch
from PIL import Image

from ddpm.imaging import make_image_grid, save_animation, save_image, to_model_range, to_uint8


def test_uint8_round_trip():
    x = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    assert torch.equal(to_uint8(to_model_range(x)), x)
    assert to_uint8(torch.tensor([-5.0, 5.0])).tolist() == [0, 255]


def test_grid_places_each_image():
    images = torch.stack([torch.full((3, 4, 4), v) for v in (-1.0, 0.0, 1.0)])
    grid = make_image_grid(images, nrow=2, padding=1)
    assert grid.size == (2 * 5 + 1, 2 * 5 + 1) and grid.mode == "RGB"
    px = grid.load()
    assert px[1, 1] == (0, 0, 0) and px[6, 1] == (128, 128, 128) and px[1, 6] == (255, 255, 255)
    assert px[0, 0] == (255, 255, 255)  # padding is white
    assert make_image_grid(torch.zeros(5, 1, 2, 2)).mode == "L"


def test_saving_is_complete_and_leaves_no_temp_files(tmp_path):
    img = make_image_grid(torch.zeros(4, 1, 8, 8))
    save_image(img, tmp_path / "sub" / "g.png", scale=3)
    assert Image.open(tmp_path / "sub" / "g.png").size == (img.width * 3, img.height * 3)
    frames = [make_image_grid(torch.full((4, 1, 8, 8), v)) for v in (-1.0, 0.0, 1.0)]
    save_animation(frames, tmp_path / "a.gif")
    assert Image.open(tmp_path / "a.gif").n_frames == 3
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.gif", "g.png", "sub"]
