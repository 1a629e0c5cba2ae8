"""``log.jsonl``: one JSON object per line, each with the ``step`` it describes."""

from __future__ import annotations

import json
from pathlib import Path

from ddpm.fileio import write_text_atomic


class RunLog:
    """Appends records to a run's ``log.jsonl``."""

    def __init__(self, path: Path):
        self.path = path

    def write_if(self, condition: bool, record: dict) -> None:
        if not condition:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def keep_until(self, step: int) -> None:
        """Make the log end at ``step`` (the step training restarts from), atomically: drop the
        records of later steps, which the run will redo, and a line cut short by a kill."""
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
