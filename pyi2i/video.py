"""Video in, video out: `translate --input clip.mp4 --output out.mp4` (PyAV, the `video` extra)."""

from __future__ import annotations

import os
from pathlib import Path

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES and Path(path).is_file()
