"""``log.jsonl``: one JSON object per line, each with the ``step`` it describes; optionally mirrored
to TensorBoard event files in ``tensorboard/`` beside it."""

from __future__ import annotations

import json
from pathlib import Path

from ddpm.errors import UserError
from ddpm.fileio import write_text_atomic


class RunLog:
    """Appends records to a run's ``log.jsonl``; with ``tensorboard`` also writes every number of a
    record as a scalar ``train/KEY`` at its step (event files in ``tensorboard/``, opened on the
    first record, so a run that fails its checks leaves no folder)."""

    def __init__(self, path: Path, tensorboard: bool = False):
        self.path = path
        self.tensorboard = tensorboard
        self._writer = None
        self._purge_step: int | None = None
        if tensorboard:
            try:
                import torch.utils.tensorboard  # noqa: F401
            except ImportError:
                raise UserError(
                    "train.tensorboard needs the tensorboard package: pip install 'ddpm-toolkit[tensorboard]'"
                ) from None

    def write_if(self, condition: bool, record: dict) -> None:
        if not condition:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tensorboard:
            self._scalars(record)

    def _scalars(self, record: dict) -> None:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step: TensorBoard drops the events a resumed run is about to log again
            self._writer = SummaryWriter(str(self.path.parent / "tensorboard"), purge_step=self._purge_step)
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self._writer.add_scalar(f"train/{key}", value, record["step"])
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def keep_until(self, step: int) -> None:
        """Make the log end at ``step`` (the step training restarts from), atomically: drop the
        records of later steps, which the run will redo, and a line cut short by a kill."""
        self._purge_step = step + 1
        if not self.path.is_file():
            return
        text = self.path.read_text()
        kept = [line for line in text.splitlines(keepends=True) if _keep(line, step)]
        if len(kept) != len(text.splitlines(keepends=True)):
            write_text_atomic(self.path, "".join(kept))


def _keep(line: str, step: int) -> bool:
    if not line.endswith("\n"):
        return False  # the last line of a killed write
    try:
        record = json.loads(line)
    except ValueError:
        return True  # not ours to judge
    return not (isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] > step)


def read_log(path: Path) -> dict[str, list[tuple[int, float]]]:
    """Every numeric series of a ``log.jsonl`` as {key: [(step, value), …]} in step order. Where a
    step appears more than once (a run resumed from an earlier checkpoint logs its steps again),
    the last record of it counts; damaged lines are skipped."""
    by_step: dict[int, dict] = {}
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            by_step[record["step"]] = record
    series: dict[str, list[tuple[int, float]]] = {}
    for step in sorted(by_step):
        for key, value in by_step[step].items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                series.setdefault(key, []).append((step, float(value)))
    return series
