"""Up-front checks of command-line arguments, so that bad input fails before any work is done."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ddpm.errors import UserError


def require_at_least(flag: str, value: int | float | None, low: int = 1) -> None:
    """``value`` (if given) is ≥ ``low``."""
    if value is not None and not value >= low:
        raise UserError(f"{flag} must be ≥ {low}, got {value}")


def parse_sizes(flag: str, text: str, low: int = 1, high: int = 4096) -> tuple[int, ...]:
    """``"32,64"`` → (32, 64): a comma-separated list of whole numbers in [low, high]."""
    try:
        sizes = tuple(int(s) for s in text.replace(" ", "").split(",") if s)
    except ValueError:
        raise UserError(f"{flag} must be whole numbers separated by commas (e.g. 32,64), got {text!r}") from (
            None
        )
    if not sizes or not all(low <= s <= high for s in sizes):
        raise UserError(f"{flag} must list sizes from {low} to {high} (e.g. 32,64), got {text!r}")
    return sizes


def _writable_folder(flag: str, path: Path, folder: Path) -> None:
    """The nearest existing folder at or above ``folder`` (where ``path`` goes) accepts new files."""
    probe = folder
    while not probe.exists():
        if probe.is_symlink():
            raise UserError(f"{flag} {path}: {probe} is a broken link")
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{flag} {path}: {probe} is a file, not a folder; choose another path")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        raise UserError(f"{flag} {path}: cannot write in {probe} ({err.strerror or err})") from None


def check_output_file(flag: str, path: str | Path) -> None:
    """``path`` can become a file: it is not a folder and its folder (made if missing) is writable."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file name")
    _writable_folder(flag, path, path.parent)


def check_output_folder(flag: str, path: str | Path) -> None:
    """``path`` can be a folder: it is not a file and it (or the folder it is made in) is writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file, not a folder; give a folder")
    _writable_folder(flag, path, path)


def physical_memory() -> int | None:
    """Bytes of RAM in this machine, or None where the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(what: str, nbytes: int, advice: str) -> None:
    """Refuse a job whose outputs alone (``nbytes``) would not fit in this machine's RAM."""
    ram = physical_memory()
    if ram and nbytes > ram:
        raise UserError(
            f"{what} would need about {nbytes / 2**30:,.1f} GiB, more than the "
            f"{ram / 2**30:.0f} GiB of RAM; {advice}"
        )
