"""Atomic file writes: a crash leaves the old file or the new one, never half of one."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

TEMP_PREFIX = "."  # a folder is written as .{name}.XXXX, then renamed; the old one goes to .{name}.old


def default_mode(directory: bool = False) -> int:
    """The permission bits a plain ``open``/``mkdir`` would give under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def fsync_path(path: str | Path) -> None:
    """Flush a file's (or a folder's) contents to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, flush it, then rename it over
    ``path``. On any error the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, default_mode())
        fsync_path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Replace a text file atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_folder_atomic(directory: Path, fill: Callable[[Path], None]) -> Path:
    """Make ``directory`` by letting ``fill`` write into a temporary folder beside it, flushing it,
    and renaming it into place: a killed write leaves the old folder (or none), never half of one."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{directory.name}.", dir=directory.parent))
    try:
        os.chmod(tmp, default_mode(directory=True))
        fill(tmp)
        for folder, subfolders, files in os.walk(tmp):
            for name in subfolders:
                os.chmod(Path(folder) / name, default_mode(directory=True))
            for name in files:
                os.chmod(Path(folder) / name, default_mode())
                fsync_path(Path(folder) / name)
            fsync_path(Path(folder))
        if directory.exists():
            old = directory.with_name(f"{TEMP_PREFIX}{directory.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            directory.rename(old)
            tmp.rename(directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(directory)
        fsync_path(directory.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def cache_dir() -> Path:
    """Where built data sets, trained evaluation networks and cached features live:
    ``$DDPM_CACHE``, default ``~/.cache/ddpm``."""
    return Path(os.environ.get("DDPM_CACHE", Path.home() / ".cache" / "ddpm"))


def installed_package_dir(module: str) -> Path | None:
    """The folder of an installed package, found without importing it (None if absent)."""
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])
