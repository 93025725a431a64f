"""Stopping on request: Ctrl-C or SIGTERM saves a checkpoint after the current step, then stops."""

from __future__ import annotations

import logging
import signal

from pyi2i.engine import distributed

log = logging.getLogger("pyi2i")


class StopRequest:
    """Ctrl-C or SIGTERM asks the loop to save and stop after the current step."""

    def __init__(self):
        self.signal: int | None = None
        self.previous: dict = {}

    def __enter__(self):
        self.previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def requested(self, world: distributed.World) -> bool:
        """Whether any rank was asked to stop; the ranks stop together, after the same step."""
        if world.any(self.signal is not None) and self.signal is None:
            self.signal = signal.SIGTERM  # another rank's request
        return self.signal is not None

    def handle(self, signum, frame) -> None:
        if self.signal is not None:
            # A second Ctrl-C: the user really wants out. SIGTERM, though, comes again and again from
            # schedulers and launchers (torchrun forwards the one it got): it never aborts the save.
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        self.signal = signum
        log.warning("%s received: saving a checkpoint after this step, then stopping (again to abort)",
                    signal.Signals(signum).name)

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            # Once stopping for SIGTERM, the process is on its way out: a repeated one must not kill it
            # before it exits with its status (and its checkpoint is saved by now).
            signal.signal(s, signal.SIG_IGN if self.signal == signal.SIGTERM == s else handler)
