"""Silence the "Gym has been unmaintained" notice.

Old ``gym`` is installed only because procgen2 and d3rlpy require it, and
Stable-Baselines3 and procgen import it on first use; its import prints a
four-line notice to stderr. gengap never uses old Gym, and the notice would
break the CLI's one-line errors, so the first import happens here, quietly.
"""

from __future__ import annotations

import contextlib
import io
import sys


def import_gym_quietly() -> None:
    if "gym" in sys.modules:
        return
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            import gym  # noqa: F401
        except ImportError:  # not installed: nothing would print the notice either
            pass
