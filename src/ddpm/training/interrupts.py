"""Stop requests: Ctrl-C (SIGINT) and SIGTERM ask the training loop to stop at the next step boundary.

The handler only records the request; the loop finishes the step it is in, saves a checkpoint and
stops, so no checkpoint ever holds half a step (random draws made but weights not updated, or an
optimiser or EMA update half applied). A second Ctrl-C aborts at once, after saying so on stderr;
repeated SIGTERMs (torchrun forwards one to each worker after the terminal's SIGINT) only repeat
the request.
"""

from __future__ import annotations

import os
import signal
import threading


def _say(text: str) -> None:
    os.write(2, (text + "\n").encode())  # not print: a handler may interrupt a print in progress


class StopRequest:
    """Install the handlers for the ``with`` block (main thread only; elsewhere it does nothing).

    ``requested`` turns true at the first signal; ``hard`` when a second Ctrl-C aborted the run.
    """

    def __init__(self) -> None:
        self.requested = False
        self.hard = False
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            self.hard = True
            _say("\nsecond interrupt: stopping now without saving; the last saved checkpoint is kept")
            raise KeyboardInterrupt
        if not self.requested:
            self.requested = True
            name = signal.Signals(signum).name
            _say(f"\n{name}: stopping after this step to save a checkpoint (Ctrl-C again: abort, no save)")

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
