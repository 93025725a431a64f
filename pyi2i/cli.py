"""What the command-line entry points share: logging set-up and turning known errors into messages."""

from __future__ import annotations

import logging
import os
import sys
from typing import Callable, NoReturn

from pyi2i.errors import UserError

log = logging.getLogger("pyi2i")

# Raised for bad input by code that predates UserError; a message, not a bug, like UserError.
_OLDER_USER_ERRORS = (ValueError, FileExistsError, FileNotFoundError)
# How torch's DataLoader re-raises an exception from a worker: the worker's traceback inside the message.
_WORKER_TRACEBACK = "Original Traceback (most recent call last):"


def one_line(error: BaseException) -> str:
    """The error's message on one line; for an error re-raised from a data-loader worker, the
    worker's own message rather than its traceback."""
    message = str(error)
    if _WORKER_TRACEBACK in message:
        last = [line for line in message.splitlines() if line.strip()][-1]
        # "pyi2i.data.images.DataError: cannot read image ..." -> "cannot read image ..."
        prefix = f"{type(error).__module__}.{type(error).__qualname__}: "
        message = (last[len(prefix):] if last.startswith(prefix) else last.split(": ", 1)[-1]) + \
            " (in a data-loader worker)"
    return " ".join(message.split())


def run_cli(main: Callable[[], None]) -> int:
    """Runs `main`; a problem with the user's input, files or environment ends with its message on
    one line and exit code 1 instead of a traceback (set PYI2I_DEBUG=1 to see the traceback). Usage
    errors exit 2, from argparse."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        main()
    except (UserError, *_OLDER_USER_ERRORS) as e:
        if os.environ.get("PYI2I_DEBUG"):
            raise
        log.error("error: %s", one_line(e))
        return 1
    return 0


def console_script(main: Callable[[], None]) -> Callable[[], NoReturn]:
    """An entry point's `cli()`: `main` through run_cli, with its exit code. The installed script
    (pyi2i-train, ...) and `python -m` both call it, so they answer alike."""

    def cli() -> NoReturn:
        sys.exit(run_cli(main))

    return cli
