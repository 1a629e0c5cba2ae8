"""One writer per run folder: an exclusive ``fcntl.flock`` on ``RUN/train.lock``.

flock rather than an O_CREAT|O_EXCL lock file: the kernel releases a flock when its holder dies,
however it dies (SIGKILL, power cut of a process), so a stale lock never blocks a run and taking
one over needs no guess about whether a pid is still alive (pids are reused; hosts differ). The
file holds ``pid``, ``host`` and ``started`` of the holder only to name it in the error a second
writer gets. The holder removes the file on release; because a process may open the file just
before it is removed, :meth:`RunLock.acquire` checks after locking that its file is still the
one at the path, and retries if not (the usual lock-then-verify-inode pattern).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path

from ddpm.errors import UserError

try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are not locked
    fcntl = None

LOCK_FILE = "train.lock"


def _holder(path: Path) -> str:
    """Who holds the lock at ``path``, as the holder wrote it (best effort)."""
    try:
        info = json.loads(path.read_text())
        return f"process {info['pid']} on host {info['host']} (since {info['started']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


class RunLock:
    """An exclusive lock on a run folder; use as a context manager or call acquire/release."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None
        self._made_folder = False

    def acquire(self) -> RunLock:
        """Take the lock, or raise UserError naming the process that holds it. Creates the run folder."""
        if fcntl is None:
            return self
        self._made_folder = not self.path.parent.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise UserError(
                    f"{self.path.parent} is in use by {_holder(self.path)}; wait for it to finish "
                    f"or stop it, or choose another --out"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the holder removed the file between our open and our lock: try again
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(info) + "\n").encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # while still locked, so no one can lock the file we remove
        os.close(self._fd)
        self._fd = None
        self._remove_made_folder()

    def _remove_made_folder(self) -> None:
        """Leave no empty run folder behind when the run it was made for wrote nothing."""
        if self._made_folder:
            with contextlib.suppress(OSError):  # not empty: the run wrote into it
                self.path.parent.rmdir()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
