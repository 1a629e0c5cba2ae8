"""Data sets read from disk image by image, for sets larger than memory: a folder of images, a zip of
one, tar shards in the WebDataset layout, or a Hugging Face ``datasets`` set saved to disk.

Each is a map-style ``torch.utils.data.Dataset`` whose item i is the uint8 (C, S, S) image, decoded
and resized exactly as the in-memory folder loader does (so both paths train on the same pixels). Only
an index is held in memory (numpy arrays: no per-item Python objects for a forked ``DataLoader`` worker
to copy); file handles are opened per process on first use. A file that cannot be decoded is reported
once on stderr and replaced by the next readable image, so a long run is not lost to one bad file and
the data order stays a function of (seed, step).
"""

from __future__ import annotations

import io
import os
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ddpm.data.image_folder import EXTENSIONS, fit_image
from ddpm.errors import UserError

DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError, EOFError)
LABEL_SUFFIXES = (".cls", ".label")


def _is_image(name: str) -> bool:
    return Path(name).suffix.lower() in EXTENSIONS


class _PerProcess:
    """An open file (or archive) per process: handles do not survive a fork into a worker."""

    def __init__(self, opener):
        self.opener, self.pid, self.handle = opener, None, None

    def get(self):
        if self.pid != os.getpid():
            self.handle, self.pid = self.opener(), os.getpid()
        return self.handle


class FolderSource:
    """Every image file under a folder (recursively), in sorted order."""

    def __init__(self, root: Path):
        files = []
        for folder, _, names in os.walk(root):
            rel = os.path.relpath(folder, root)
            files += [os.path.normpath(os.path.join(rel, n)) for n in names if _is_image(n)]
        # UTF-8 bytes, one fixed-width array: a few tens of bytes per image, shared by forked workers
        self.root, self.names = root, np.array(sorted(f.encode() for f in files), dtype=np.bytes_)
        self.labels = None

    def read(self, i: int):
        return (self.root / self.names[i].decode()).read_bytes()

    def where(self, i: int) -> str:
        return str(self.root / self.names[i].decode())


class ZipSource:
    """Every image file inside a zip archive, in sorted order of member names."""

    def __init__(self, path: Path):
        try:
            with zipfile.ZipFile(path) as z:
                members = sorted(n for n in z.namelist() if _is_image(n))
        except (zipfile.BadZipFile, OSError) as err:
            raise UserError(f"{path} is not a readable zip file ({err})") from None
        self.path, self.labels = path, None
        self.names = np.array([m.encode() for m in members], dtype=np.bytes_)
        self._zip = _PerProcess(lambda: zipfile.ZipFile(path))

    def read(self, i: int):
        return self._zip.get().read(self.names[i].decode())

    def where(self, i: int) -> str:
        return f"{self.path}:{self.names[i].decode()}"


class TarShardSource:
    """WebDataset shards: tar files whose members ``KEY.png`` (or .jpg, …) are the images and an
    optional ``KEY.cls`` holds an integer label. The shards are read in sorted order; each is indexed
    once (member offsets), then images are read by seeking."""

    def __init__(self, shards: list[Path]):
        shard_ids, offsets, sizes, keys, labels = [], [], [], [], []
        for s, shard in enumerate(shards):
            found: dict[str, tuple[int, int]] = {}
            label_of: dict[str, int] = {}
            try:
                with tarfile.open(shard) as tar:
                    for m in tar:
                        if not m.isfile():
                            continue
                        key, suffix = os.path.splitext(m.name)
                        if _is_image(m.name):
                            found[key] = (m.offset_data, m.size)
                        elif suffix in LABEL_SUFFIXES:
                            text = tar.extractfile(m).read().decode().strip()
                            if text.lstrip("-").isdigit():
                                label_of[key] = int(text)
            except (tarfile.TarError, OSError) as err:
                raise UserError(f"{shard} is not a readable tar shard ({err})") from None
            for key in sorted(found):
                shard_ids.append(s)
                offsets.append(found[key][0])
                sizes.append(found[key][1])
                keys.append(key)
                labels.append(label_of.get(key, -1))
        self.shards = [str(p) for p in shards]
        self.shard_ids = np.array(shard_ids, dtype=np.int32)
        self.offsets, self.sizes = np.array(offsets, dtype=np.int64), np.array(sizes, dtype=np.int64)
        self.names = np.array([k.encode() for k in keys], dtype=np.bytes_)
        labels_arr = np.array(labels, dtype=np.int64)
        self.labels = labels_arr if len(labels_arr) and (labels_arr >= 0).all() else None
        self._files = {}

    def read(self, i: int):
        s = int(self.shard_ids[i])
        handle = self._files.setdefault(s, _PerProcess(lambda s=s: open(self.shards[s], "rb"))).get()  # noqa: SIM115
        handle.seek(int(self.offsets[i]))
        return handle.read(int(self.sizes[i]))

    def where(self, i: int) -> str:
        return f"{self.shards[int(self.shard_ids[i])]}:{self.names[i].decode()}"


class HuggingFaceSource:
    """A Hugging Face ``datasets`` set on disk (``save_to_disk`` folder, or a folder of Parquet
    files), with its first image column; an integer ``label`` column, if any, gives the labels."""

    def __init__(self, path: Path):
        try:
            import datasets
        except ImportError:
            raise UserError(
                "Hugging Face data sets need the datasets package: pip install 'ddpm-toolkit[hf]'"
            ) from None
        try:
            if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
                data = datasets.load_from_disk(str(path))
            else:
                files = sorted(str(p) for p in path.rglob("*.parquet"))
                if not files:
                    raise UserError(f"{path} holds neither a saved data set nor Parquet files")
                data = datasets.load_dataset("parquet", data_files=files, split="train")
        except (FileNotFoundError, ValueError) as err:
            raise UserError(f"{path} cannot be read as a Hugging Face data set ({err})") from None
        if isinstance(data, datasets.DatasetDict):
            data = data["train"] if "train" in data else next(iter(data.values()))
        columns = [k for k, f in data.features.items() if isinstance(f, datasets.Image)]
        if not columns:
            raise UserError(f"the data set in {path} has no image column ({', '.join(data.features)})")
        self.path, self.data, self.column = path, data, columns[0]
        self.names = np.arange(len(data))
        self.labels = None
        if "label" in data.features:
            self.labels = np.asarray(data["label"], dtype=np.int64)

    def read(self, i: int):
        return self.data[int(i)][self.column]

    def where(self, i: int) -> str:
        return f"{self.path}[{i}]"


def open_source(path: str | Path):
    """The source a path names: a folder of images, a zip file, a tar shard or a folder of shards
    (``*.tar``), or a Hugging Face data set folder."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"data path {path} does not exist")
    if path.is_file():
        if zipfile.is_zipfile(path):
            return ZipSource(path)
        if path.suffix == ".tar":
            return TarShardSource([path])
        raise UserError(f"{path} is neither a zip file nor a .tar shard; give a folder, a .zip or a .tar")
    shards = sorted(path.glob("*.tar"))
    if shards:
        return TarShardSource(shards)
    if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
        return HuggingFaceSource(path)
    if any(path.rglob("*.parquet")):
        return HuggingFaceSource(path)
    return FolderSource(path)


class StreamingImages(torch.utils.data.Dataset):
    """Images of a :func:`open_source` source, decoded on access to uint8 (channels, S, S)."""

    def __init__(self, path: str | Path, image_size: int, channels: int = 3):
        if channels not in (1, 3):
            raise UserError(f"streamed data sets load 1 or 3 channels, not {channels}")
        self.source = open_source(path)
        if len(self.source.names) == 0:
            raise UserError(f"no images ({', '.join(sorted(EXTENSIONS))}) found in {path}")
        self.image_size, self.channels = image_size, channels
        self.name = Path(path).stem
        self._reported: set[int] = set()

    def __len__(self) -> int:
        return len(self.source.names)

    @property
    def labels(self) -> torch.Tensor | None:
        labels = self.source.labels
        return None if labels is None else torch.from_numpy(labels)

    def decode(self, i: int) -> torch.Tensor:
        """Image ``i``; raises one of DECODE_ERRORS for a file that is not a readable image."""
        raw = self.source.read(i)
        with raw if isinstance(raw, Image.Image) else Image.open(io.BytesIO(raw)) as im:
            array = fit_image(im, self.image_size, self.channels)
        x = torch.from_numpy(array.copy())
        return x[None] if self.channels == 1 else x.permute(2, 0, 1).contiguous()

    def __getitem__(self, i: int) -> torch.Tensor:
        n = len(self)
        for k in range(n):
            j = (int(i) + k) % n
            try:
                return self.decode(j)
            except DECODE_ERRORS as err:
                if j not in self._reported:
                    self._reported.add(j)
                    where = self.source.where(j)
                    print(f"warning: skipping unreadable image {where} ({err})", file=sys.stderr)
        raise UserError(f"none of the {n} images of {self.name} can be read")
