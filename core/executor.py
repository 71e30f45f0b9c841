"""The one executor: a picklable function mapped over tasks, locally or on Ray.

Sweeps, studies, the quickstart and parallel evaluation all run their tasks through
:class:`Executor`:

* ``backend="local"``: a spawn process pool sized to the machine (one task per core);
  workers run native code and torch with one thread each (``OMP_NUM_THREADS=1``), so
  ``N`` workers use ``N`` cores and no more. ``workers=1`` runs the tasks in this process.
* ``backend="ray"``: Ray tasks on an existing cluster (``address``, or ``RAY_ADDRESS``)
  or, without one, on a local Ray instance started for the job and shut down after it
  (no dashboard). CPUs and GPUs per task are arguments.

:meth:`Executor.map` yields each task's :class:`Outcome` as it completes, so a caller
can show progress and record failures without losing the other tasks' results. Closing
the iterator early (or Ctrl-C) cancels the tasks that have not finished.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any, Generic, TypeVar
from urllib.parse import urlparse

from gengap.core import checks
from gengap.core.errors import InputError

__all__ = ["BACKENDS", "Executor", "Outcome", "machine_cores"]

BACKENDS = ("local", "ray")
T = TypeVar("T")
R = TypeVar("R")

# A Ray address that does not answer within this many seconds is an input error.
_CONNECT_TIMEOUT_S = 3.0


def machine_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class Outcome(Generic[R]):
    """What one task gave: its value, or the error it raised.

    Attributes:
        index: Position of the task in the sequence given to :meth:`Executor.map`.
        value: The function's return value (``None`` when it failed).
        error: The exception it raised, or ``None``.
        traceback: The formatted traceback of ``error`` ("" when it succeeded).
        seconds: Wall time of the task, as measured where it ran.
    """

    index: int
    value: R | None = None
    error: BaseException | None = None
    traceback: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def result(self) -> R:
        """The value; re-raises the task's exception if it failed."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


def _limit_threads(threads: int) -> None:
    """One native thread pool size for this process; torch follows if already imported."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(threads)


def _call(function: Callable[[Any], Any], task: Any, threads: int) -> tuple[Any, float]:
    """Run one task in a worker (thread limits first, before the task imports torch)."""
    _limit_threads(threads)
    start = time.perf_counter()
    value = function(task)
    return value, time.perf_counter() - start


def _check_reachable(address: str) -> None:
    """One line within seconds when a Ray address does not answer (instead of Ray's retries)."""
    if address in ("auto", "local"):
        return
    parsed = urlparse(address if "://" in address else f"ray://{address}")
    try:
        host, port = parsed.hostname, parsed.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise InputError(
            f"Ray address must look like HOST:PORT or ray://HOST:PORT, got {address!r}"
        )
    try:
        with socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT_S):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise InputError(
            f"Ray address {address!r} does not answer ({reason}); start the cluster with "
            "`ray start --head` or give the address it printed"
        ) from None


class Executor:
    """Maps a picklable function over tasks on a local process pool or on Ray.

    Args:
        backend: ``"local"`` or ``"ray"``.
        workers: Tasks run at once (local: worker processes, default one per core; ray,
            local instance: the instance's CPUs, default one per core; ray, cluster:
            ignored, the cluster schedules).
        threads: Native/torch threads per task (local workers and Ray tasks).
        address: Ray cluster address (``ray`` only; default ``RAY_ADDRESS``, else a local
            instance for the job).
        cpus_per_task: CPUs Ray reserves per task.
        gpus_per_task: GPUs Ray reserves per task (fractions share a GPU).

    Raises:
        InputError: For an unknown backend, a bad count, or a Ray address given to the
            local backend.
    """

    def __init__(
        self,
        backend: str = "local",
        *,
        workers: int | None = None,
        threads: int = 1,
        address: str | None = None,
        cpus_per_task: float = 1,
        gpus_per_task: float = 0,
    ) -> None:
        checks.one_of("backend", backend, BACKENDS)
        if workers is not None:
            checks.positive_int("workers", workers)
        checks.positive_int("threads", threads)
        checks.positive_number("cpus_per_task", cpus_per_task)
        checks.non_negative_number("gpus_per_task", gpus_per_task)
        if backend == "local" and address is not None:
            raise InputError(f"a Ray address ({address!r}) needs backend 'ray', got 'local'")
        self.backend = backend
        self.workers = workers or machine_cores()
        self.threads = threads
        self.address = address
        self.cpus_per_task = cpus_per_task
        self.gpus_per_task = gpus_per_task

    def __repr__(self) -> str:
        return f"Executor(backend={self.backend!r}, workers={self.workers})"

    def map(self, function: Callable[[T], R], tasks: Sequence[T]) -> Iterator[Outcome[R]]:
        """Run ``function(task)`` for every task; yield each outcome as it completes.

        A task that raises gives an :class:`Outcome` with its error; the other tasks go
        on. Closing the iterator, or KeyboardInterrupt, cancels what has not finished.
        """
        tasks = list(tasks)
        if not tasks:
            return iter(())
        if self.backend == "ray":
            return self._map_ray(function, tasks)
        if min(self.workers, len(tasks)) == 1:
            return self._map_inline(function, tasks)
        return self._map_local(function, tasks)

    def run(self, function: Callable[[T], R], tasks: Sequence[T]) -> list[R]:
        """Every task's value in task order; the first failure (by task order) is raised."""
        outcomes = sorted(self.map(function, tasks), key=lambda outcome: outcome.index)
        return [outcome.result() for outcome in outcomes]

    # -- backends ------------------------------------------------------------------------
    @staticmethod
    def _map_inline(function: Callable[[T], R], tasks: list[T]) -> Iterator[Outcome[R]]:
        for index, task in enumerate(tasks):
            start = time.perf_counter()
            try:
                value = function(task)
            except Exception as error:  # recorded, like a worker's failure
                yield Outcome(index, error=error, traceback=traceback.format_exc(),
                              seconds=time.perf_counter() - start)  # fmt: skip
            else:
                yield Outcome(index, value=value, seconds=time.perf_counter() - start)

    def _map_local(self, function: Callable[[T], R], tasks: list[T]) -> Iterator[Outcome[R]]:
        pool = ProcessPoolExecutor(
            min(self.workers, len(tasks)),
            mp_context=get_context("spawn"),
            initializer=_limit_threads,
            initargs=(self.threads,),
        )
        futures: dict[Future[tuple[R, float]], int] = {
            pool.submit(_call, function, task, self.threads): index
            for index, task in enumerate(tasks)
        }
        pending = set(futures)
        finished = False
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    index = futures[future]
                    error = future.exception()
                    if error is None:
                        value, seconds = future.result()
                        yield Outcome(index, value=value, seconds=seconds)
                    else:
                        text = "".join(traceback.format_exception(error))
                        yield Outcome(index, error=error, traceback=text)
            finished = True
        finally:
            if finished:
                pool.shutdown(wait=True)
            else:  # Ctrl-C or the caller stopped early: drop queued tasks, stop the workers
                # A running task cannot be cancelled through the pool's API: end its process.
                processes = list((getattr(pool, "_processes", None) or {}).values())
                pool.shutdown(wait=False, cancel_futures=True)
                for process in processes:
                    if process.is_alive():
                        process.terminate()
                for process in processes:
                    process.join(timeout=5)
                    if process.is_alive():  # still up on a loaded machine: no more asking
                        process.kill()
                        process.join(timeout=5)

    def _map_ray(self, function: Callable[[T], R], tasks: list[T]) -> Iterator[Outcome[R]]:
        import ray

        started = self._start_ray(ray)
        try:
            remote = ray.remote(
                num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task, max_retries=0
            )(_call)
            refs = {
                remote.remote(function, task, self.threads): index
                for index, task in enumerate(tasks)
            }
            pending = list(refs)
            finished = False
            try:
                while pending:
                    done, pending = ray.wait(pending, num_returns=1)
                    for ref in done:
                        index = refs[ref]
                        try:
                            value, seconds = ray.get(ref)
                        except ray.exceptions.RayTaskError as error:
                            cause = error.as_instanceof_cause()
                            yield Outcome(index, error=cause, traceback=str(error))
                        except ray.exceptions.RayError as error:  # worker died, cancelled
                            yield Outcome(index, error=error, traceback=str(error))
                        else:
                            yield Outcome(index, value=value, seconds=seconds)
                finished = True
            finally:
                if not finished:
                    for ref in pending:
                        ray.cancel(ref, force=True)
        finally:
            if started:
                ray.shutdown()

    def _start_ray(self, ray: Any) -> bool:
        """Connect to the cluster, or start a local instance; True when this call started it."""
        if ray.is_initialized():
            return False
        address = self.address or os.environ.get("RAY_ADDRESS") or None
        options: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": "ERROR",
            "configure_logging": True,
        }
        if address:
            _check_reachable(address)
            try:
                ray.init(address=address, **options)
            except (ConnectionError, RuntimeError) as error:
                first = str(error).strip().splitlines()[0] if str(error).strip() else ""
                raise InputError(f"Ray address {address!r} could not be joined: {first}") from None
        else:
            # A local instance for this job only: no dashboard, nothing left listening.
            ray.init(num_cpus=self.workers, **options)
        return True
