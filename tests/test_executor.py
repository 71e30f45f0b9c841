"""The one executor: local spawn pool, in-process, and Ray (a real local instance)."""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest

from gengap.core.errors import InputError
from gengap.core.executor import Executor, machine_cores


def _by_index(outcomes):
    return {outcome.index: outcome for outcome in outcomes}


@pytest.mark.parametrize("workers", [1, 2])
def test_local_map_yields_every_outcome_and_records_a_failure(workers):
    outcomes = _by_index(Executor("local", workers=workers).map(math.sqrt, [4.0, -1.0, 9.0]))
    assert sorted(outcomes) == [0, 1, 2]
    assert outcomes[0].value == 2.0 and outcomes[2].value == 3.0
    failed = outcomes[1]
    assert not failed.ok and isinstance(failed.error, ValueError)
    assert "math domain error" in failed.traceback
    with pytest.raises(ValueError, match="math domain error"):
        Executor("local", workers=workers).run(math.sqrt, [4.0, -1.0])


def test_local_workers_run_one_native_thread_and_default_to_the_cores():
    values = Executor("local", workers=2).run(os.getenv, ["OMP_NUM_THREADS", "MKL_NUM_THREADS"])
    assert values == ["1", "1"]
    assert Executor("local").workers == machine_cores()


def test_results_come_as_they_complete():
    order = [o.index for o in Executor("local", workers=2).map(time.sleep, [3.0, 0.0, 0.0])]
    assert order[-1] == 0  # the slow task finishes last although it was given first


def test_closing_the_iterator_cancels_unfinished_tasks():
    # Only this pool's workers count: an earlier test's broken pool may still be reaping its
    # own workers in its manager thread when this one starts.
    earlier = set(multiprocessing.active_children())
    start = time.perf_counter()
    outcomes = Executor("local", workers=2).map(time.sleep, [0.0, 60.0, 60.0])
    first = next(outcomes)
    assert first.index == 0
    outcomes.close()
    assert time.perf_counter() - start < 30
    survivors = set(multiprocessing.active_children()) - earlier
    assert not [p for p in survivors if p.is_alive()]


def test_ctrl_c_stops_the_pool_promptly():
    code = (
        # Ctrl-C as from a terminal, even when the suite runs in the background (a shell
        # starts background jobs with SIGINT ignored, and Python then installs no handler).
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "import time\n"
        "from gengap.core.executor import Executor\n"
        "print('ready', flush=True)\n"
        "Executor('local', workers=2).run(time.sleep, [120.0, 120.0])\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    time.sleep(4)  # let the workers start their tasks
    process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("Ctrl-C did not stop the executor within 30 s")
    assert process.returncode != 0
    assert "KeyboardInterrupt" in stderr


def test_bad_arguments_are_input_errors():
    with pytest.raises(InputError, match="unknown backend 'rai'; did you mean 'ray'"):
        Executor("rai")
    with pytest.raises(InputError, match="workers must be a positive integer, got 0"):
        Executor("local", workers=0)
    with pytest.raises(InputError, match="needs backend 'ray'"):
        Executor("local", address="127.0.0.1:6379")


def test_a_ray_address_that_does_not_answer_is_one_line_within_seconds():
    start = time.perf_counter()
    with pytest.raises(InputError, match=r"Ray address '127\.0\.0\.1:1' does not answer"):
        next(Executor("ray", address="127.0.0.1:1").map(math.sqrt, [1.0]))
    assert time.perf_counter() - start < 10


def test_ray_backend_on_a_local_instance_matches_the_local_pool():
    pytest.importorskip("ray")
    tasks = [4.0, -1.0, 9.0, 16.0]
    ray_outcomes = _by_index(Executor("ray", workers=2).map(math.sqrt, tasks))
    local_outcomes = _by_index(Executor("local", workers=2).map(math.sqrt, tasks))
    assert sorted(ray_outcomes) == [0, 1, 2, 3]
    for index in (0, 2, 3):
        assert ray_outcomes[index].value == local_outcomes[index].value
    failed = ray_outcomes[1]
    assert not failed.ok and isinstance(failed.error, ValueError)
    import ray

    assert not ray.is_initialized()  # the instance started for the job is shut down


def test_a_training_run_on_ray_gives_the_numbers_of_a_local_run(tmp_path):
    pytest.importorskip("ray")
    from gengap.drivers.train import run_or_resume
    from gengap.eval.runs import ExperimentConfig, RunFolder

    def config(out: str) -> ExperimentConfig:
        return ExperimentConfig(
            env_id="gengap/minigrid-doorkey-5x5-v0",
            total_timesteps=128,
            num_envs=2,
            num_train_levels=4,
            agent={"n_steps": 64, "batch_size": 64, "n_epochs": 1},
            eval_every=128,
            eval_episodes=1,
            final_eval_episodes=4,
            eval_num_envs=4,
            out_dir=str(tmp_path / out),
        )

    [on_ray] = Executor("ray", workers=2).run(run_or_resume, [config("ray")])
    [local] = Executor("local", workers=1).run(run_or_resume, [config("local")])

    def returns(run_dir) -> list[tuple]:
        folder = RunFolder(run_dir)
        episodes = folder.store().episodes(run_id=folder.run_id(), tag="final")
        return [(e["part"], e["level_seed"], e["return"], e["length"]) for e in episodes]

    assert RunFolder(on_ray).status() == "done"
    assert returns(on_ray) == returns(local) and len(returns(local)) == 8
