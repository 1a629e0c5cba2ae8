"""Streaming data: folders, zips, WebDataset shards and Hugging Face sets read image by image give
the pixels (and the training) of the in-memory path; each process decodes only its share."""

import io
import os
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from ddpm.data import DataConfig, load_dataset
from ddpm.data.streaming import StreamingImages
from ddpm.errors import UserError
from ddpm.training import train
from ddpm.training.batches import batch_indices
from ddpm.training.streamed_examples import StreamedExamples

from .helpers import assert_weights_close, final_weights, tiny_run

N = 96


def _png(image: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image[0].numpy()).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def digits():
    from ddpm.data import load_digits

    d = load_digits(8)
    return d.images[:N], d.labels[:N]


@pytest.fixture(scope="module")
def sources(tmp_path_factory, digits):
    """The same N digits as a folder, a zip, two WebDataset shards (with labels) and one shard."""
    images, labels = digits
    root = tmp_path_factory.mktemp("sources")
    folder = root / "folder"
    (folder / "sub").mkdir(parents=True)
    for i, image in enumerate(images):  # nested folders: the sorted relative path is the order
        (folder / ("sub" if i >= N // 2 else "") / f"{i:05d}.png").write_bytes(_png(image))
    with zipfile.ZipFile(root / "digits.zip", "w") as z:
        for i, image in enumerate(images):
            z.writestr(f"d/{i:05d}.png", _png(image))
    shards = root / "shards"
    shards.mkdir()
    for s in range(2):
        with tarfile.open(shards / f"shard-{s:06d}.tar", "w") as tar:
            for i in range(s * N // 2, (s + 1) * N // 2):
                for suffix, data in ((".png", _png(images[i])), (".cls", str(int(labels[i])).encode())):
                    info = tarfile.TarInfo(f"{i:05d}{suffix}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return {
        "folder": folder,
        "zip": root / "digits.zip",
        "shards": shards,
        "one shard": shards / "shard-000000.tar",
    }


@pytest.mark.parametrize("kind", ["folder", "zip", "shards", "one shard"])
def test_every_source_reads_the_pixels_of_the_in_memory_path(sources, digits, kind):
    images, labels = digits
    streamed = StreamingImages(sources[kind], image_size=8, channels=1)
    n = N // 2 if kind == "one shard" else N
    assert len(streamed) == n
    assert torch.equal(torch.stack([streamed[i] for i in range(n)]), images[:n])
    if kind in ("shards", "one shard"):
        assert torch.equal(streamed.labels, labels[:n])
    else:
        assert streamed.labels is None
    # and the in-memory loader of the same path agrees
    assert torch.equal(
        load_dataset(DataConfig(dataset="folder", path=str(sources[kind]), image_size=8)).images, images[:n]
    )


def test_a_hugging_face_data_set_on_disk(tmp_path, digits):
    datasets = pytest.importorskip("datasets")
    images, labels = digits
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    rows = {"image": [Image.fromarray(x[0].numpy()) for x in images], "label": labels.tolist()}
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp_path / "hf"))
    streamed = StreamingImages(tmp_path / "hf", image_size=8, channels=1)
    assert torch.equal(torch.stack([streamed[i] for i in range(N)]), images)
    assert torch.equal(streamed.labels, labels)


ARGS = dict(steps=6, batch_size=8, checkpoint_every=3, lr_schedule="cosine", warmup_steps=2, hflip=True)


@pytest.fixture(scope="module")
def plain(tmp_path_factory, digits):
    out = tmp_path_factory.mktemp("plain")
    train(tiny_run(**ARGS), digits[0], out, progress=False)
    return final_weights(out)


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_training_is_in_memory_training(tmp_path, sources, plain, workers):
    streamed = StreamedExamples(StreamingImages(sources["folder"], 8, 1), workers=workers)
    train(tiny_run(**ARGS), streamed, tmp_path, progress=False)
    assert_weights_close(final_weights(tmp_path), plain)


def test_a_resumed_streamed_run_reads_the_batches_it_would_have(tmp_path, sources, plain):
    def streamed():
        return StreamedExamples(StreamingImages(sources["zip"], 8, 1), workers=1)

    run = tiny_run(**ARGS)
    run.train = replace(run.train, steps=3)
    train(run, streamed(), tmp_path, progress=False)
    train(tiny_run(**ARGS), streamed(), tmp_path, resume=True, progress=False)
    assert_weights_close(final_weights(tmp_path), plain)


class _Counting(torch.utils.data.Dataset):
    def __init__(self, images):
        self.images, self.read = images, []

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        self.read.append(int(i))
        return self.images[i]


def test_each_process_decodes_only_its_share(digits):
    images = digits[0]
    counting = _Counting(images)
    examples = StreamedExamples(counting, workers=0)
    counting.read.clear()
    examples.start(0, 2, batch_size=8, seed=0, share=slice(4, 8))  # rank 1 of 2
    idx = batch_indices(len(images), 8, 0, 0)  # the batch of step 0, as the loop asks for it
    x = examples.batch(idx, torch.Generator())
    assert sorted(counting.read) == sorted(idx[4:].tolist())
    assert torch.equal(x[4:], images[idx[4:]].float() / 127.5 - 1)
    assert torch.equal(x[:4], torch.full_like(x[:4], -1.0))


def test_two_streaming_processes_match_one_in_memory(tmp_path, sources, plain):
    """torchrun, 2 CPU processes, each decoding its 4 of 8 images a step: the weights of 1 process."""
    flags = (
        "--config digits-tiny --no-progress --train.steps 6 --train.batch_size 8 --train.checkpoint_every 3 "
        "--train.lr_schedule cosine --train.warmup_steps 2 --train.hflip true --train.sample_every 0 "
        f"--train.log_every 5 --data.dataset folder --data.path {sources['folder']} --data.streaming true "
        "--data.workers 1 --data.channels 1"
    )
    args = [*flags.split(), "--out", str(tmp_path / "ddp")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = subprocess.run(
        [*cmd, "-m", "ddpm", "train", *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert_weights_close(final_weights(tmp_path / "ddp"), plain)


def test_an_unreadable_file_is_named_once_and_replaced_by_the_next(tmp_path, digits, capfd):
    images = digits[0][:4]
    for i, image in enumerate(images):
        (tmp_path / f"{i}.png").write_bytes(_png(image))
    (tmp_path / "1.png").write_bytes(b"not a png")
    streamed = StreamingImages(tmp_path, 8, 1)
    assert torch.equal(streamed[1], images[2]) and torch.equal(streamed[1], images[2])
    err = capfd.readouterr().err
    assert err.count("1.png") == 1 and "skipping" in err


@pytest.mark.parametrize(
    "options, why",
    [
        ({"dataset": "fashion-mnist", "streaming": True}, "dataset = folder"),
        ({"dataset": "folder", "streaming": True, "workers": -1}, "workers"),
    ],
)
def test_streaming_settings_are_checked(options, why):
    with pytest.raises(UserError, match=why):
        from ddpm.configuration import from_dict

        from_dict(DataConfig, options)


def test_missing_and_unreadable_paths_are_one_line(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        StreamingImages(tmp_path / "nowhere", 8, 1)
    (tmp_path / "x.tar").write_bytes(b"garbage" * 100)
    with pytest.raises(UserError, match="tar"):
        StreamingImages(tmp_path / "x.tar", 8, 1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        StreamingImages(tmp_path / "empty", 8, 1)


def test_the_index_is_a_few_arrays(sources):
    """No per-image Python objects: what a forked worker shares stays a handful of numpy arrays."""
    streamed = StreamingImages(sources["shards"], 8, 1)
    arrays = [v for v in vars(streamed.source).values() if isinstance(v, np.ndarray)]
    assert sum(a.size for a in arrays) >= 3 * N
    assert not any(isinstance(v, list) and len(v) >= N for v in vars(streamed.source).values())
