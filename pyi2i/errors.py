"""The one error type for problems with the user's input, files or environment.

The command-line entry points print a `UserError`'s message on one line and exit with code 1
(usage errors exit 2, as argparse does); anything else is a bug and keeps its traceback. A message
says what failed, which file or option, and what to do.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix: bad input, a missing or corrupt file, an unusable environment."""
