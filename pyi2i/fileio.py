"""Writing files so that a reader or a crash never sees half of one.

Every file pyi2i writes that someone may read while it is being replaced (checkpoints, weight
files, exports, reports, logs rewritten whole) goes through `atomic_write`: the bytes go to a
temporary file in the same folder, are flushed to disk, and the temporary file is renamed over the
target in one step. An interrupted write leaves the previous file whole and, at worst, a
temporary file that `remove_orphans` clears at the next start.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from pyi2i.errors import UserError

TMP_SUFFIX = ".pyi2i-tmp"


class WriteFailed(UserError, OSError):
    """A file could not be written (disk full, read-only or missing folder)."""


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_kwargs) -> Iterator[IO]:
    """Opens a temporary file beside `path` for writing; on a clean exit it replaces `path`.

    mode is "wb" or "w" (text; `open_kwargs` such as newline="" or encoding pass through).
    On an exception the temporary file is removed and `path` is left as it was."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write writes whole files: mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and not isinstance(e, WriteFailed):  # a full disk, a read-only folder
            kept = "the previous file is kept" if path.exists() else "nothing was written"
            raise WriteFailed(f"cannot write {path}: {e.strerror or e}; {kept}. Free disk space or choose a "
                              "writable folder, then run again") from e
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """`path.write_text(text)`, atomically."""
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """`path.write_bytes(data)`, atomically."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def remove_orphans(folder: str | os.PathLike) -> list[Path]:
    """Removes the temporary files an interrupted `atomic_write` left directly in `folder`;
    returns them. Only files of this module's own naming are touched."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for tmp in folder.glob(f".*{TMP_SUFFIX}"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
