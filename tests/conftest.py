"""Test-wide settings: one torch thread (two cores are shared by pytest-xdist workers;
more threads make these tiny networks many times slower, not faster)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
