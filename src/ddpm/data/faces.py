"""Faces that don't exist: cartoon faces drawn offline from DiceBear style definitions, with a
per-pixel part label for every pixel.

The PyPI package ``dicebear-styles`` ships each style as JSON: a canvas of SVG elements and
components (head, eyes, hair, …), each component with variants, and colour palettes. This module
renders them itself (choices from a seeded RNG, SVG text, ``cairosvg``), so nothing is fetched. A
second rendering of the same SVG paints every shape in the flat colour of its part, which gives the
label map: ids in :data:`PARTS`, fixed across styles.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from ddpm.errors import UserError
from ddpm.fileio import cache_dir

PARTS = (
    "background",
    "skin",
    "eyes",
    "eyebrows",
    "mouth",
    "nose",
    "hair",
    "ears",
    "clothes",
    "accessories",
    "facial-hair",
)
PART_ID = {name: i for i, name in enumerate(PARTS)}

# component name → part, per style; canvas-level shapes belong to "skin"
STYLES = {
    "adventurer": {
        "head": "skin",
        "details": "skin",
        "eyes": "eyes",
        "eyebrows": "eyebrows",
        "mouth": "mouth",
        "hair": "hair",
        "glasses": "accessories",
        "earrings": "accessories",
    },
    "lorelei": {
        "head": "skin",
        "freckles": "skin",
        "eyes": "eyes",
        "eyebrows": "eyebrows",
        "mouth": "mouth",
        "nose": "nose",
        "hair": "hair",
        "beard": "facial-hair",
        "glasses": "accessories",
        "earrings": "accessories",
        "hairAccessories": "accessories",
    },
    "micah": {
        "head": "skin",
        "eyes": "eyes",
        "eyebrows": "eyebrows",
        "mouth": "mouth",
        "nose": "nose",
        "hair": "hair",
        "ears": "ears",
        "clothes": "clothes",
        "facialHair": "facial-hair",
        "glasses": "accessories",
        "earrings": "accessories",
    },
    "toon-head": {
        "head": "skin",
        "body": "skin",
        "eyes": "eyes",
        "eyebrows": "eyebrows",
        "mouth": "mouth",
        "hair": "hair",
        "rearHair": "hair",
        "clothes": "clothes",
        "beard": "facial-hair",
    },
}
BACKGROUNDS = ("#b6e3f4", "#c0aede", "#d1d4f9", "#ffd5dc", "#ffdfbf", "#c1f0c1", "#f4f1bb", "#e0e0e0")
# label colours: far apart in RGB so anti-aliased edges snap back to the right part
LABEL_COLOURS = np.array(
    [
        [0, 0, 0],
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [255, 255, 0],
        [255, 0, 255],
        [0, 255, 255],
        [255, 255, 255],
        [128, 0, 0],
        [0, 128, 0],
        [0, 0, 128],
    ],
    dtype=np.int32,
)
SHAPES = {"path", "circle", "ellipse", "rect", "polygon", "polyline", "line"}


def style_definition(style: str) -> dict:
    """The JSON definition of a DiceBear style, from the installed ``dicebear-styles`` package."""
    if style not in STYLES:
        raise UserError(f"unknown face style {style!r}; choose from {', '.join(STYLES)}")
    try:
        text = (resources.files("dicebear_styles") / f"{style}.json").read_text()
    except ModuleNotFoundError:
        raise UserError(
            "the faces data set needs PyPI's dicebear-styles: pip install dicebear-styles"
        ) from None
    return json.loads(text)


@dataclass(kw_only=True)
class _Choices:
    variants: dict[str, str | None]
    colours: dict[str, str]
    background: str


def _choose(definition: dict, rng: random.Random) -> _Choices:
    variants = {}
    for name, comp in definition["components"].items():
        present = rng.random() * 100 < comp.get("probability", 100)
        variants[name] = rng.choice(sorted(comp["variants"])) if present else None
    background = rng.choice(BACKGROUNDS)
    colours: dict[str, str] = {"background": background}
    for name, spec in definition.get("colors", {}).items():
        options = list(spec["values"])
        avoid = {colours.get(other) for other in spec.get("notEqualTo", [])}
        allowed = [c for c in options if c not in avoid] or options
        colours[name] = rng.choice(allowed)
    return _Choices(variants=variants, colours=colours, background=background)


class _Writer:
    """Serialises a definition's element tree to SVG, optionally in flat part colours."""

    def __init__(self, definition: dict, choices: _Choices, parts: dict[str, str], labels: bool):
        self.d, self.c, self.parts, self.labels = definition, choices, parts, labels

    def value(self, v) -> str:
        if isinstance(v, dict) and v.get("type") == "color":
            return self.c.colours.get(v["name"], "#000000")
        return str(v)

    def element(self, e: dict, part: str, in_mask: bool) -> str:
        if e.get("type") == "component":
            variant = self.c.variants.get(e["name"])
            if variant is None:
                return ""
            part = self.parts.get(e["name"], part)
            inner = self.d["components"][e["name"]]["variants"][variant]["elements"]
            body = "".join(self.element(x, part, in_mask) for x in inner)
            return f"<g{self.attributes(e.get('attributes', {}), part, in_mask, shape=False)}>{body}</g>"
        if e.get("type") != "element":
            return ""
        name = e["name"]
        inside = in_mask or name in ("mask", "defs", "clipPath", "linearGradient", "radialGradient")
        children = "".join(self.element(x, part, inside) for x in e.get("children", []))
        attrs = self.attributes(e.get("attributes", {}), part, inside, shape=name in SHAPES or name == "g")
        return f"<{name}{attrs}>{children}</{name}>"

    def attributes(self, attrs: dict, part: str, in_mask: bool, shape: bool) -> str:
        out = {k: self.value(v) for k, v in attrs.items()}
        if self.labels and shape and not in_mask:
            r, g, b = (int(c) for c in LABEL_COLOURS[PART_ID[part]])
            colour = f"#{r:02x}{g:02x}{b:02x}"
            for key in ("fill", "stroke"):
                if key in out and out[key] != "none" and not out[key].startswith("url("):
                    out[key] = colour
            for key in ("fill-opacity", "stroke-opacity", "opacity", "style"):
                out.pop(key, None)
        return "".join(f" {k}={quoteattr(v)}" for k, v in out.items())

    def svg(self) -> str:
        canvas = self.d["canvas"]
        w, h = canvas["width"], canvas["height"]
        bg = "#000000" if self.labels else self.c.background
        body = "".join(self.element(e, "skin", False) for e in canvas["elements"])
        root = self.attributes(self.d.get("attributes", {}), "skin", False, shape=False)
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}"{root}>'
            f'<rect width="{w}" height="{h}" fill="{bg}"/>{body}</svg>'
        )


def face_svgs(style: str, seed: int, definition: dict | None = None) -> tuple[str, str]:
    """(picture SVG, label SVG) of face ``seed`` in ``style``; the same seed gives the same face."""
    definition = definition or style_definition(style)
    choices = _choose(definition, random.Random(f"{style}:{seed}"))
    parts = STYLES[style]
    return _Writer(definition, choices, parts, False).svg(), _Writer(definition, choices, parts, True).svg()


def _rasterise(svg: str, size: int) -> np.ndarray:
    try:
        import cairosvg
    except (ImportError, OSError):
        raise UserError("the faces data set needs cairosvg and libcairo: pip install cairosvg") from None
    from io import BytesIO

    from PIL import Image

    png = cairosvg.svg2png(bytestring=svg.encode(), output_width=size, output_height=size)
    return np.asarray(Image.open(BytesIO(png)).convert("RGB"))


def labels_from_render(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Part ids from a flat-colour render at ``factor``× the target size: each pixel snaps to the
    nearest label colour, then each factor×factor block takes its most common id."""
    dist = ((rgb[..., None, :].astype(np.int32) - LABEL_COLOURS[None, None]) ** 2).sum(-1)
    ids = dist.argmin(-1)
    h, w = ids.shape[0] // factor, ids.shape[1] // factor
    blocks = ids.reshape(h, factor, w, factor).transpose(0, 2, 1, 3).reshape(h, w, -1)
    counts = (blocks[..., None] == np.arange(len(PARTS))).sum(2)
    return counts.argmax(-1).astype(np.uint8)


def render_face(
    style: str, seed: int, sizes: tuple[int, ...] = (32, 64), definition: dict | None = None
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{size: (RGB uint8 (S, S, 3), part ids uint8 (S, S))} of one face.

    Both are rendered once at 4× the largest size: the picture is box-averaged down (clean edges),
    the labels are snapped and majority-voted down, so every pixel gets exactly one part.
    """
    from PIL import Image

    picture, labels = face_svgs(style, seed, definition)
    big = max(sizes) * 4
    rgb, lab = _rasterise(picture, big), _rasterise(labels, big)
    return {
        s: (
            np.asarray(Image.fromarray(rgb).resize((s, s), Image.Resampling.BOX)),
            labels_from_render(lab, big // s),
        )
        for s in sizes
    }


def style_licence(style: str) -> dict:
    """Licence, creator and source of a style, from its definition's ``meta`` block."""
    return style_definition(style).get("meta", {})


def _render_many(job: tuple[list[tuple[str, int]], tuple[int, ...]]):
    items, sizes = job
    definitions = {style: style_definition(style) for style in {s for s, _ in items}}
    return [render_face(style, seed, sizes, definitions[style]) for style, seed in items]


def build_faces(
    num: int,
    out_dir: str | Path,
    sizes: tuple[int, ...] = (32, 64),
    styles: tuple[str, ...] = tuple(STYLES),
    seed: int = 0,
    workers: int = 0,
    progress: bool = True,
) -> Path:
    """Render ``num`` faces (styles in turn, face i from seed ``seed``·10⁶ + i) and write
    ``faces-{S}.npz`` (images, labels, style, seed) for every size, plus a README with each style's
    licence and attribution. Written atomically; ``workers`` processes (0 = one per CPU)."""
    from concurrent.futures import ProcessPoolExecutor

    from ddpm.fileio import atomic_write, write_text_atomic
    from ddpm.runtime import progress_bar

    if num < 1 or workers < 0 or not sizes or min(sizes) < 1:
        raise UserError(f"need num ≥ 1, workers ≥ 0 and sizes ≥ 1; got {num}, {workers}, {list(sizes)}")
    unknown = sorted(set(styles) - set(STYLES))
    if not styles or unknown:
        given = ", ".join(unknown) or "(none given)"
        raise UserError(f"unknown face style(s) {given}; choose from {', '.join(STYLES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items = [(styles[i % len(styles)], seed * 1_000_000 + i) for i in range(num)]
    chunk = 64
    jobs = [(items[k : k + chunk], tuple(sizes)) for k in range(0, num, chunk)]
    results = []
    workers = workers or os.cpu_count() or 1
    bar = progress_bar(total=num, desc="drawing faces", enabled=progress)
    if workers == 1:
        for job in jobs:
            results.extend(_render_many(job))
            bar.update(len(job[0]))
    else:
        with ProcessPoolExecutor(workers) as pool:
            for job, done in zip(jobs, pool.map(_render_many, jobs), strict=True):
                results.extend(done)
                bar.update(len(job[0]))
    bar.close()
    style_index = np.array([styles.index(s) for s, _ in items], dtype=np.uint8)
    seeds = np.array([sd for _, sd in items], dtype=np.int64)
    for size in sizes:
        images = np.stack([r[size][0] for r in results])
        labels = np.stack([r[size][1] for r in results])

        def write(tmp, images=images, labels=labels):
            with open(tmp, "wb") as f:
                np.savez_compressed(f, images=images, labels=labels, style=style_index, seed=seeds)

        atomic_write(out / f"faces-{size}.npz", write)
    write_text_atomic(out / "README.md", faces_readme(styles, num, sizes, seed))
    return out


def faces_readme(styles: tuple[str, ...], num: int, sizes: tuple[int, ...], seed: int) -> str:
    """The data set's README: contents, part ids, and every style's licence and attribution."""
    lines = [
        "# Faces that don't exist",
        "",
        f"{num} cartoon faces at {', '.join(f'{s}×{s}' for s in sizes)} RGB, drawn offline by "
        f"`ddpm data faces` (seed {seed}) from DiceBear style definitions (PyPI `dicebear-styles`), "
        "with a per-pixel part label.",
        "",
        "Files: `faces-S.npz` with `images` (N, S, S, 3) uint8, `labels` (N, S, S) uint8, `style` (N,) index "
        "into the list below, `seed` (N,).",
        "",
        "Part ids: " + ", ".join(f"{i} {name}" for i, name in enumerate(PARTS)) + ".",
        "",
        "## Styles, licences and attribution",
        "",
    ]
    for i, style in enumerate(styles):
        meta = style_licence(style)
        lic, creator, source = meta.get("license", {}), meta.get("creator", {}), meta.get("source", {})
        lines.append(
            f"{i}. **{style}** — {source.get('name', style)} by {creator.get('name', '?')} "
            f"({creator.get('url', '')}), licence {lic.get('name', '?')} ({lic.get('url', '')}). "
            f"{lic.get('text', '')}"
        )
    return "\n".join(lines) + "\n"


def default_faces_dir() -> Path:
    """``$DDPM_CACHE/faces`` (default ``~/.cache/ddpm/faces``)."""
    return cache_dir() / "faces"


def load_faces(
    root: str | Path, size: int, split: str = "train"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images (N, S, S, 3), labels (N, S, S), style (N,)) of a built faces data set; the last 10%
    of faces form the test split."""
    path = Path(root) / f"faces-{size}.npz"
    if not path.is_file():
        raise UserError(
            f"no faces data set at {path}: build it with 'ddpm data faces --out {root}' "
            f"(20,000 faces take about 20 minutes on 2 cores)"
        )
    with np.load(path) as data:
        images, labels, style = data["images"], data["labels"], data["style"]
    cut = int(len(images) * 0.9)
    part = slice(0, cut) if split == "train" else slice(cut, None)
    if split not in ("train", "test"):
        raise UserError(f"unknown faces split {split!r}; use train or test")
    return images[part], labels[part], style[part]
