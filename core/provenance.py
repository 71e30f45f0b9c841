"""Where a result came from: library versions and the git revision of the code."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

__all__ = ["TRACKED_DISTRIBUTIONS", "environment_versions", "git_revision"]

#: Distributions whose versions are recorded with every run (those installed).
TRACKED_DISTRIBUTIONS: tuple[str, ...] = (
    "gengap",
    "numpy",
    "scipy",
    "torch",
    "gymnasium",
    "gym",
    "stable-baselines3",
    "procgen2",
    "gym3",
    "minigrid",
    "rliable",
    "d3rlpy",
    "minari",
    "mujoco",
    "metaworld",
)


def environment_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Versions of Python and of the installed tracked distributions.

    Args:
        extra: More distribution names to look up.

    Returns:
        ``{"python": "3.11.x", "numpy": "1.26.4", ...}``; distributions that are not installed
        are left out.
    """
    versions = {"python": platform.python_version()}
    for name in (*TRACKED_DISTRIBUTIONS, *extra):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _git(path: Path, *args: str) -> str | None:
    # GIT_OPTIONAL_LOCKS=0: a status query must not write the index (another process may be
    # committing in the same checkout).
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    try:
        completed = subprocess.run(
            ["git", "-C", str(path), *args],
            capture_output=True,
            text=True,
            timeout=10,
            env=env,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if completed.returncode != 0:
        return None
    return completed.stdout.strip()


def git_revision(path: str | Path | None = None) -> str | None:
    """The commit checked out at ``path``, with ``-dirty`` when tracked files were modified.

    Args:
        path: A folder inside a git work tree; defaults to gengap's source folder.

    Returns:
        A 40-hex commit id (plus ``"-dirty"``), or ``None`` when ``path`` is not in a git work
        tree or git is not available.
    """
    folder = Path(path) if path is not None else Path(__file__).resolve().parent.parent
    if not folder.is_dir():
        return None
    revision = _git(folder, "rev-parse", "--verify", "HEAD")
    if not revision:
        return None
    status = _git(folder, "status", "--porcelain", "--untracked-files=no")
    return f"{revision}-dirty" if status else revision
