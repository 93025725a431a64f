"""What the command-line entry points share: logging set-up and turning known errors into messages."""

from __future__ import annotations

import logging
import os
import sys
from typing import Callable

log = logging.getLogger("pyi2i")


def run_cli(main: Callable[[], None]) -> int:
    """Runs `main`; a problem with the user's input or files ends with its message and exit code 1
    instead of a traceback (set PYI2I_DEBUG=1 to see the traceback)."""
    from pyi2i.data import DataError
    from pyi2i.data.dali import DaliUnavailable
    from pyi2i.engine.trainer import NonFiniteLoss
    from pyi2i.errors import UserError
    from pyi2i.models.original_format import IncompatibleCheckpoint
    from pyi2i.ops import BackendUnavailable

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    user_errors = (UserError, DataError, DaliUnavailable, IncompatibleCheckpoint, NonFiniteLoss, BackendUnavailable,
                   FileExistsError, FileNotFoundError, ValueError)
    try:
        main()
    except user_errors as e:
        if os.environ.get("PYI2I_DEBUG"):
            raise
        log.error("error: %s", e)
        return 1
    return 0
