"""Content checksums of the files pyi2i writes, recorded beside them and verified when they are loaded.

The record of `NAME` is `NAME.sha256`, in the format of `sha256sum` (so `sha256sum -c NAME.sha256`
checks it by hand too). It lives beside the file rather than inside it so that weight files stay
plain state dicts that the original release loads.

`save_bytes` replaces a file and its record so that a crash at any point leaves a pair that
verifies: the record first accepts both the old and the new contents, then the file is replaced,
then the record is narrowed to the new contents.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from pyi2i import fileio
from pyi2i.errors import UserError

log = logging.getLogger("pyi2i")

SUFFIX = ".sha256"
_CHUNK = 1 << 20


class CorruptFile(UserError):
    """A file's contents do not match its recorded checksum."""


def record_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + SUFFIX)


def digest_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _write(path: Path, digests: list[str]) -> None:
    fileio.write_text(record_path(path), "".join(f"{d}  {path.name}\n" for d in digests))


def recorded(path: str | os.PathLike) -> list[str] | None:
    """The digests the record of `path` accepts; None when there is no record."""
    record = record_path(path)
    try:
        lines = record.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    return [line.split()[0].lower() for line in lines if line.strip()]


def write_record(path: str | os.PathLike) -> str:
    """Records the checksum of `path` as it is now (call it right after writing the file); returns it."""
    digest = digest_file(path)
    _write(Path(path), [digest])
    return digest


def save_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `path` atomically, with its record, never leaving a pair that fails `verify`."""
    path = Path(path)
    new = digest_bytes(data)
    old = recorded(path) or []
    _write(path, [new] + [d for d in old if d != new])
    fileio.write_bytes(path, data)
    _write(path, [new])


def verify(path: str | os.PathLike) -> bool:
    """Checks `path` against its record: True when it matches; False, with a notice, when it has
    none (made by the original release or by hand); CorruptFile, naming the file, on a mismatch."""
    path = Path(path)
    accepted = recorded(path)
    if accepted is None:
        log.info("notice: %s has no checksum record (%s); loading it unverified", path, record_path(path).name)
        return False
    if digest_file(path) not in accepted:
        raise CorruptFile(f"{path} does not match its checksum record {record_path(path).name}: the file is corrupt "
                          "or was changed after it was written. Restore it from a copy or use another checkpoint; "
                          f"if you changed it on purpose, delete {record_path(path).name}")
    return True
