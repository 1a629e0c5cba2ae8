"""The web page of ``ddpm serve`` (Gradio): sample any model with a live view of the denoising, or
restore an uploaded image with an image-to-image model. It calls the pipelines as the CLI does.

One sampling runs at a time (a small machine); queued requests are shown their place. Each request
streams the model's current estimate x̂₀ every few steps, then the result, which can be downloaded as
a PNG. A mistake (a bad path, a wrong image, an option the model does not take) is shown on the page
as one line and the server carries on.
"""

from __future__ import annotations

import functools
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image

from ddpm.checkpoints import read_meta
from ddpm.errors import UserError
from ddpm.imaging import make_image_grid
from ddpm.pipelines import generate, load_model, pretrained_names
from ddpm.pipelines.autoencoders import is_autoencoder
from ddpm.pipelines.loading import LoadedModel
from ddpm.pipelines.locate import resolve_checkpoint
from ddpm.pipelines.restoration import MASKED, condition_from_input, image_tensor, mask_tensor, restore
from ddpm.samplers import SAMPLERS

FRAMES = 20  # live previews per request, about
MAX_IMAGES = 16


@functools.lru_cache(maxsize=3)
def _load(name: str) -> LoadedModel:
    return load_model(name.strip())


def loaded_model(name: str) -> LoadedModel:
    """The model a name or path gives (kept loaded for the next request); errors as UserError."""
    if not name or not name.strip():
        raise UserError("choose a model: a pretrained name or the path of a run or checkpoint")
    return _load(name.strip())


def sampleable_pretrained() -> list[str]:
    """The pretrained diffusion models (not autoencoders), ``fashion-mnist`` first."""
    names = [n for n in pretrained_names() if not is_autoencoder(read_meta(resolve_checkpoint(n)))]
    return sorted(names, key=lambda n: (n != "fashion-mnist", n))


def describe(loaded: LoadedModel) -> str:
    """One line on what a model is and takes."""
    c = loaded.config
    shape = "×".join(map(str, loaded.image_shape))
    takes = []
    if c.model.num_classes:
        takes.append(f"classes ({', '.join(loaded.class_names[:10])})")
    if c.model.context_dim:
        takes.append("a text prompt")
    if c.data.task != "none":
        takes.append(f"an image to restore ({c.data.task}; use the Restore tab)")
    sampler = f"{c.sample.sampler}, {c.sample.steps or c.diffusion.num_timesteps} steps"
    return f"{shape} images, predicts {c.diffusion.prediction_type}, default sampler {sampler}" + (
        f"; takes {', '.join(takes)}" if takes else ""
    )


def _to_pil(images: torch.Tensor) -> Image.Image:
    """(N, C, H, W) in [−1, 1] as one grid, enlarged to about 256 px per image for the page."""
    grid = make_image_grid(images.clamp(-1, 1), nrow=min(len(images), 4))
    scale = max(1, 256 // images.shape[-1])
    return grid.resize((grid.width * scale, grid.height * scale), Image.Resampling.NEAREST)


def _live(work: Callable[[Callable], torch.Tensor], loaded: LoadedModel, steps: int) -> Iterator:
    """Run ``work(on_step)`` in a thread; yield ("frame", step, grid) every few steps, then
    ("done", images). Errors of the work are raised here."""
    every = max(1, steps // FRAMES)
    events: queue.Queue = queue.Queue()
    coder = loaded.autoencoder

    def on_step(i, t, xt, x0):
        if i % every == 0:
            shown = x0.detach().float().cpu()
            if coder is not None:
                shown = coder.decode_latents(shown)
            events.put(("frame", i, _to_pil(shown)))

    def target():
        try:
            events.put(("done", work(on_step)))
        except BaseException as err:  # noqa: BLE001 — handed to the request, which reports it
            events.put(("error", err))

    threading.Thread(target=target, daemon=True).start()
    while True:
        kind, *rest = events.get()
        if kind == "error":
            raise rest[0]
        yield kind, *rest
        if kind == "done":
            return


def _save(image: Image.Image) -> str:
    path = Path(tempfile.mkdtemp(prefix="ddpm-serve-")) / "result.png"
    image.save(path)
    return str(path)


def _sampler(loaded: LoadedModel, name: str, steps: int):
    if name not in SAMPLERS:
        raise UserError(f"unknown sampler {name!r}")
    if not 1 <= int(steps) <= loaded.schedule.num_timesteps:
        raise UserError(f"steps must be between 1 and {loaded.schedule.num_timesteps} for this model")
    return replace(loaded.config.sample, sampler=name, steps=int(steps))


def sample_request(model, sampler, steps, seed, guidance, classes, prompt, num) -> Iterator[tuple]:
    """Generate images; yields (live preview, status, result, file) as sampling goes."""
    loaded = loaded_model(model)
    if loaded.config.data.task != "none":
        raise UserError(f"{model} restores images ({loaded.config.data.task}); use the Restore tab")
    config = _sampler(loaded, sampler, steps)
    num = int(num)
    if not 1 <= num <= MAX_IMAGES:
        raise UserError(f"images: 1 to {MAX_IMAGES}")
    kwargs = {}
    if classes and classes.strip():
        kwargs["class_labels"] = loaded.parse_classes(classes)
    if prompt and prompt.strip():
        if not loaded.config.model.context_dim:
            raise UserError("this model takes no text prompt; clear the prompt")
        kwargs["prompts"] = [prompt.strip()]
    if loaded.config.model.num_classes or loaded.config.model.context_dim:
        kwargs["guidance"] = float(guidance)

    def work(on_step):
        out = generate(
            loaded,
            num,
            seed=int(seed),
            sampler=config,
            batch_size=num,
            on_step=on_step,
            progress=False,
            **kwargs,
        )
        return out.images

    yield from _stream(work, loaded, config.steps)


def restore_request(model, image, mask, steps, seed) -> Iterator[tuple]:
    """Restore an uploaded image with an image-to-image model; yields like :func:`sample_request`."""
    loaded = loaded_model(model)
    task = loaded.config.data.task
    if task == "none":
        raise UserError(f"{model} generates images; it restores nothing (choose an image-to-image model)")
    if image is None:
        raise UserError("upload an image to restore")
    c = loaded.config.model
    config = _sampler(loaded, loaded.config.sample.sampler, steps)
    x = image_tensor(image, c.in_channels)
    m = None
    if task in MASKED:
        if mask is None:
            raise UserError(f"{task} needs a mask: white = keep, black = fill")
        m = mask_tensor(mask.resize((c.image_size, c.image_size), Image.Resampling.NEAREST))
    y, m = condition_from_input(task, x, c.image_size, m)

    def work(on_step):
        return restore(loaded, y, m, seed=int(seed), sampler=config, on_step=on_step)[0]

    yield from _stream(work, loaded, config.steps)


def _stream(work, loaded: LoadedModel, steps: int) -> Iterator[tuple]:
    for kind, *rest in _live(work, loaded, steps):
        if kind == "frame":
            step, grid = rest
            yield grid, f"step {step + 1} / {steps}: the model's current estimate of the result", None, None
        else:
            result = _to_pil(rest[0])
            yield result, f"done: {steps} steps", result, _save(result)


def build_page(models: list[str] | None = None):
    """The Gradio ``Blocks`` of the page; ``models`` are offered first (run folders, say)."""
    import gradio as gr

    def guarded(handler):
        @functools.wraps(handler)
        def run(*args):
            try:
                yield from handler(*args)
            except UserError as err:
                raise gr.Error(str(err), print_exception=False) from None
            except Exception as err:  # noqa: BLE001 — the page shows it; the server carries on
                raise gr.Error(f"{type(err).__name__}: {err}", print_exception=True) from None

        return run

    def on_model(name):
        try:
            loaded = loaded_model(name)
        except UserError as err:
            return f"⚠ {err}", gr.update(), gr.update()
        return (
            describe(loaded),
            gr.update(value=loaded.config.sample.sampler),
            gr.update(value=loaded.config.sample.steps or loaded.schedule.num_timesteps),
        )

    choices = list(dict.fromkeys([*(models or []), *sampleable_pretrained()]))
    with gr.Blocks(title="ddpm") as page:
        gr.Markdown("# ddpm — sample a diffusion model, watch it denoise")
        with gr.Row():
            model = gr.Dropdown(choices, value=choices[0] if choices else None, label="model",
                                allow_custom_value=True, elem_id="model", scale=3)  # fmt: skip
            info = gr.Markdown(elem_id="model-info")
        with gr.Row():
            sampler = gr.Dropdown(list(SAMPLERS), value="ancestral", label="sampler", elem_id="sampler")
            steps = gr.Number(value=50, precision=0, label="steps", elem_id="steps")
            seed = gr.Number(value=0, precision=0, label="seed", elem_id="seed")
        with gr.Tab("Generate"):
            with gr.Row():
                num = gr.Slider(1, MAX_IMAGES, value=4, step=1, label="images", elem_id="num")
                guidance = gr.Slider(0, 10, value=3, step=0.5, label="guidance (class or text models)")
                classes = gr.Textbox(label="classes (names or indices, comma-separated)", elem_id="classes")
                prompt = gr.Textbox(label="prompt (text models)", elem_id="prompt")
            go = gr.Button("Generate", variant="primary", elem_id="generate")
        with gr.Tab("Restore"):
            with gr.Row():
                upload = gr.Image(type="pil", label="image to restore", image_mode=None, elem_id="upload")
                mask = gr.Image(type="pil", label="mask (inpainting: white keep, black fill)", elem_id="mask")
            fix = gr.Button("Restore", variant="primary", elem_id="restore")
        status = gr.Markdown(elem_id="status")
        with gr.Row():
            live = gr.Image(label="denoising (live)", format="png", elem_id="live", interactive=False)
            final = gr.Image(label="result", format="png", buttons=["download"], elem_id="result",
                             interactive=False)  # fmt: skip
        download = gr.File(label="download PNG", elem_id="download")
        outputs = [live, status, final, download]
        model.change(on_model, model, [info, sampler, steps])
        page.load(on_model, model, [info, sampler, steps])
        go.click(
            guarded(sample_request), [model, sampler, steps, seed, guidance, classes, prompt, num], outputs
        )
        fix.click(guarded(restore_request), [model, upload, mask, steps, seed], outputs)
    page.queue(default_concurrency_limit=1, max_size=32)
    return page


def serve(host: str = "127.0.0.1", port: int = 7860, models: list[str] | None = None, block: bool = True):
    """Start the page on ``host``:``port`` (nothing is sent anywhere else: no share link, no analytics)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    page = build_page(models)
    page.launch(server_name=host, server_port=port, share=False, prevent_thread_lock=not block, quiet=True)
    return page
