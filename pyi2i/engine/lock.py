"""One writer per run folder: an OS lock held for the whole run.

`fcntl.flock` locks belong to the open file, so the kernel releases them when the process dies,
however it dies: a `kill -9` leaves no stale lock behind. The lock file also names its holder
(host, PID, start time) for the message a second writer gets.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from pyi2i.errors import UserError

LOCK_NAME = ".lock"


class RunFolderBusy(UserError):
    """Another process is writing to this run folder."""


# The locks this process holds, by folder: a process that builds a second Trainer for the same
# folder (a resume in the same Python session) takes its own lock over instead of refusing itself.
_held: dict[Path, int] = {}


class RunLock:
    """Holds the lock of `run_dir` from `acquire` until `release` (or the process ends); never waits."""

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / LOCK_NAME
        self.key = Path(os.path.abspath(self.path))

    def acquire(self) -> "RunLock":
        if self.key in _held:
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise UserError(f"cannot create the run folder {self.path.parent}: {e.strerror or e}; choose a writable "
                            "--checkpoints_dir") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 1024).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise RunFolderBusy(f"{self.path.parent} is in use by {holder}: wait for that run to end or stop it, "
                                "or choose another --name (or --checkpoints_dir); nothing was written") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"PID {os.getpid()} on host {socket.gethostname()} (since {time.strftime('%Y-%m-%d %H:%M:%S')})"
                     .encode())
        _held[self.key] = fd
        return self

    def release(self) -> None:
        fd = _held.pop(self.key, None)
        if fd is not None:
            os.close(fd)  # closing the last descriptor drops the lock
