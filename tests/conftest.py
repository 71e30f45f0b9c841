"""Test-wide settings: one torch thread (two cores are shared by pytest-xdist workers;
more threads make these tiny networks many times slower, not faster)."""

import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


def _kill_process_group(process: subprocess.Popen[Any], timeout: float = 60.0) -> None:
    """kill -9 a process started with ``start_new_session=True`` and every process of its
    group, and wait until all are gone: SIGKILL is delivered at once, but a worker exits (and
    the kernel frees its run-folder lock) a moment after the leader."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"processes of group {process.pid} alive {timeout:.0f} s after kill -9")


@pytest.fixture
def kill_process_group() -> Callable[[subprocess.Popen[Any]], None]:
    """:func:`_kill_process_group`, for the tests that interrupt real runs with kill -9."""
    return _kill_process_group
