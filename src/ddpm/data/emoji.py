"""Emoji with their names as captions, for text-to-image: Google's Noto emoji from the npm package
``emoji-datasource-google`` (64 px PNGs and an ``emoji.json`` of names and categories).

Why this source rather than Debian's colour-emoji font: the PNGs are ready-made 64 px images with a
transparent background, and every image comes with its Unicode name, short names, category and
skin-tone variants in one JSON file, so captions need no guessing from code points. The images are
under the Apache License 2.0 (Noto emoji); the package metadata under MIT.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from ddpm.errors import UserError
from ddpm.fileio import atomic_write, cache_dir, write_text_atomic

PACKAGE = "emoji-datasource-google"
VERSION = "16.0.0"
SKIN_TONES = {
    "1F3FB": "light skin tone",
    "1F3FC": "medium-light skin tone",
    "1F3FD": "medium skin tone",
    "1F3FE": "medium-dark skin tone",
    "1F3FF": "dark skin tone",
}


def default_emoji_dir() -> Path:
    """``$DDPM_CACHE/emoji`` (default ``~/.cache/ddpm/emoji``)."""
    return cache_dir() / "emoji"


def fetch_package(workdir: Path) -> Path:
    """Install the npm package into ``workdir`` with the machine's npm; returns its folder."""
    npm = shutil.which("npm")
    if npm is None:
        raise UserError(
            "building the emoji set needs npm (apt-get install npm), "
            f"or --source pointing to an unpacked {PACKAGE}"
        )
    cmd = [npm, "install", "--no-save", "--ignore-scripts", "--prefix", str(workdir), f"{PACKAGE}@{VERSION}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    folder = workdir / "node_modules" / PACKAGE
    if done.returncode != 0 or not folder.is_dir():
        raise UserError(f"npm could not install {PACKAGE}@{VERSION}: {done.stderr.strip().splitlines()[-1:]}")
    return folder


def caption(name: str, tone: str | None = None) -> str:
    """'SMILING FACE WITH SUNGLASSES' → 'smiling face with sunglasses' (+ ', medium skin tone')."""
    text = name.lower()
    return f"{text}, {tone}" if tone else text


def emoji_entries(source: Path, skin_tones: bool = True) -> list[dict]:
    """(image file, caption, category) of every emoji that has a Google image."""
    data = json.loads((source / "emoji.json").read_text())
    out = []
    for e in data:
        if not e.get("has_img_google") or not e.get("name"):
            continue
        out.append({"image": e["image"], "caption": caption(e["name"]), "category": e["category"]})
        for code, var in (e.get("skin_variations") or {}).items() if skin_tones else ():
            if var.get("has_img_google") and code in SKIN_TONES:
                out.append(
                    {
                        "image": var["image"],
                        "caption": caption(e["name"], SKIN_TONES[code]),
                        "category": e["category"],
                    }
                )
    return out


def load_png(path: Path, size: int) -> np.ndarray:
    """An RGBA PNG composited over white, resized to size×size (box filter), as uint8 RGB."""
    with Image.open(path) as im:
        rgba = im.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB")
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BOX)
    return np.asarray(rgb)


def build_emoji(
    out_dir: str | Path, source: str | Path | None = None, sizes=(32, 64), skin_tones: bool = True
) -> Path:
    """Write ``emoji-S.npz`` (images, captions, categories) for every size, and a README."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(source) if source else fetch_package(Path(tmp))
        if not (folder / "emoji.json").is_file():
            raise UserError(f"{folder} is not an unpacked {PACKAGE} (no emoji.json)")
        entries = emoji_entries(folder, skin_tones)
        images_dir = folder / "img" / "google" / "64"
        missing = [e["image"] for e in entries if not (images_dir / e["image"]).is_file()]
        entries = [e for e in entries if (images_dir / e["image"]).is_file()]
        for size in sizes:
            images = np.stack([load_png(images_dir / e["image"], size) for e in entries])
            captions = np.array([e["caption"] for e in entries])
            categories = np.array([e["category"] for e in entries])

            def write(tmp_path, images=images, captions=captions, categories=categories):
                with open(tmp_path, "wb") as f:
                    np.savez_compressed(f, images=images, captions=captions, categories=categories)

            atomic_write(out / f"emoji-{size}.npz", write)
    note = f" ({len(missing)} listed images were missing and skipped)" if missing else ""
    write_text_atomic(
        out / "README.md",
        f"# Emoji with names\n\n{len(entries)} emoji{note} from npm `{PACKAGE}@{VERSION}`, "
        "composited on white, "
        f"at {', '.join(f'{s}×{s}' for s in sizes)}; caption = the lower-cased Unicode name "
        "(plus the skin tone for variants).\n\nImages: Google Noto emoji, Apache License 2.0 "
        "(https://github.com/googlefonts/noto-emoji/blob/main/LICENSE). Names and metadata: "
        "emoji-datasource, MIT licence, © Cal Henderson.\n",
    )
    return out


def load_emoji(root: str | Path, size: int, split: str = "train") -> tuple[np.ndarray, list[str], np.ndarray]:
    """(images (N, S, S, 3), captions, categories); every tenth emoji forms the test split."""
    path = Path(root) / f"emoji-{size}.npz"
    if not path.is_file():
        raise UserError(f"no emoji data set at {path}: build it with 'ddpm data emoji --out {root}'")
    if split not in ("train", "test", "all"):
        raise UserError(f"unknown emoji split {split!r}; use train, test or all")
    with np.load(path) as data:
        images, captions, categories = data["images"], data["captions"], data["categories"]
    idx = np.arange(len(images))
    keep = idx if split == "all" else idx[(idx % 10 == 9) == (split == "test")]
    return images[keep], [str(c) for c in captions[keep]], categories[keep]
