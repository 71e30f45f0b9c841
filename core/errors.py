"""The one exception type for bad user input.

Why a type of its own: the CLI turns bad input into one line and exit status 2, and
every other exception into a traceback (exit 1). Mapping every ``ValueError`` to
"bad input" hid real bugs raised deep inside SB3 or torch hours into a run, so
validation code raises :class:`InputError` (or a subclass) and nothing else is
treated as the user's mistake.

The subclasses keep the builtin type a caller would expect (``TypeError`` for a value
of the wrong type, ``FileNotFoundError`` / ``FileExistsError`` for paths), so code that
catches the builtin keeps working.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class InputError(ValueError):
    """A value the user gave is not acceptable; the message names it, what was
    expected and what was given."""


class InputTypeError(InputError, TypeError):
    """A value the user gave has the wrong type."""


class InputFileNotFoundError(InputError, FileNotFoundError):
    """A path the user gave does not exist (or is not the kind of file expected)."""


class InputFileExistsError(InputError, FileExistsError):
    """A path the user gave is already taken."""


def unknown_name_message(kind: str, name: object, options: Iterable[str]) -> str:
    """One line naming the bad value, the closest matches and the options."""
    options = sorted(options)
    close = difflib.get_close_matches(str(name), options, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    shown = ", ".join(options[:12]) + (
        f", ... ({len(options)} in all)" if len(options) > 12 else ""
    )
    return f"unknown {kind} {name!r}{hint} (expected one of: {shown})"


__all__ = [
    "InputError",
    "InputFileExistsError",
    "InputFileNotFoundError",
    "InputTypeError",
    "unknown_name_message",
]
