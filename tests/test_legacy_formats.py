"""Run folders, results stores and datasets written by an earlier gengap still load and
evaluate unchanged.

The fixtures in ``tests/fixtures/legacy/`` were written by ``make_fixtures.py`` there, run
once with the code of the commit that added them (main at 0fc29b1, before ``gengap.core``
existed; their ``run.json`` and dataset cards record that revision):

- ``runfolders/``: one results store (``gengap.sqlite``) and two run folders writing to it:
  PPO on ``gengap/minigrid-doorkey-5x5-entities-v0`` (5 training levels, 128 steps, a Dict
  observation space whose Box bounds differ per entry, so the checkpoint's nested-list space
  encoding is exercised) and BC (20 updates) on ``data/gotolocal-bot``.
- ``data/gotolocal-compositional-bot``: 3 BabyAI-bot episodes of
  ``gengap/babyai-gotolocal-compositional-v0`` (Dict observations with per-entry bounds in
  the dataset card's flat-list encoding, a zstd-compressed field, mission combinations);
  ``data/gotolocal-bot``: 3 bot episodes of ``gengap/babyai-gotolocal-v0`` (Box).
- ``expected/``: what that code read back from them (``expected.json``: the store's rows,
  each dataset's counts and transition digests, each agent's actions and action
  probabilities on fixed observations, the episodes of a ``gengap eval``) and the
  ``report.md`` / ``summary.json`` that ``gengap report`` wrote for the two runs.

The tests read the fixtures with today's code through the same record functions
(imported from ``make_fixtures.py``) and compare. Stored values (SQLite rows, dataset
arrays, episode outcomes) must come back exactly; network outputs are compared with a
tolerance (``PROBABILITY_ATOL``), since other CPUs compute the last bits differently.
The greedy actions are compared exactly: the recorded gap between the two most likely
actions (``smallest_top2_margin``, at least 0.016) is far above that tolerance.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest

from gengap.agents.base import read_config
from gengap.offline.dataset import Dataset
from gengap.scripts.cli import main

LEGACY = Path(__file__).resolve().parent / "fixtures" / "legacy"
EXPECTED = json.loads((LEGACY / "expected" / "expected.json").read_text())
PPO_RUN = "minigrid-doorkey-5x5-entities-ppo-L5-s0"
BC_RUN = "babyai-gotolocal-bc-L200-s0"
#: Action probabilities of the saved networks, recomputed on another CPU or thread count.
PROBABILITY_ATOL = 1e-5


def _recorder() -> Any:
    spec = importlib.util.spec_from_file_location("legacy_make_fixtures",
                                                  LEGACY / "make_fixtures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RECORD = _recorder()


@pytest.fixture
def legacy_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fixtures copied to a scratch folder (reading a store may write its WAL files,
    eval writes rows), which becomes the working directory, as when they were made."""
    for name in ("runfolders", "data"):
        shutil.copytree(LEGACY / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(RECORD.to_json(value)))


def test_fixtures_are_small():
    total = sum(path.stat().st_size for path in LEGACY.rglob("*") if path.is_file())
    assert total < 1_000_000, f"legacy fixtures hold {total} bytes"


def test_store_rows_read_back_unchanged(legacy_copy: Path):
    record = RECORD.store_record(legacy_copy / "runfolders" / "gengap.sqlite")
    assert _as_json(record) == EXPECTED["store"]
    assert {run["run_id"] for run in record["runs"]} == {PPO_RUN, BC_RUN}
    assert all(record["episodes"][run] for run in (PPO_RUN, BC_RUN))


@pytest.mark.parametrize("name", ["data/gotolocal-compositional-bot", "data/gotolocal-bot"])
def test_dataset_checksums_and_transitions_unchanged(legacy_copy: Path, name: str):
    assert _as_json(RECORD.dataset_record(legacy_copy / name)) == EXPECTED["datasets"][name]
    dataset = Dataset.open(legacy_copy / name, verify=True)
    env = gymnasium.make(dataset.env_id)
    # The card's space encoding decodes to the env's own spaces, bounds included.
    assert dataset.observation_space == env.observation_space
    assert dataset.action_space == env.action_space
    assert main(["dataset", "verify", name]) == 0


@pytest.mark.parametrize("run", [PPO_RUN, BC_RUN])
@pytest.mark.parametrize("sub", ["agent", "checkpoint"])
def test_saved_agents_act_unchanged(legacy_copy: Path, run: str, sub: str):
    expected = EXPECTED["agents"][run]
    if run == PPO_RUN:
        obs = {key: np.asarray(field["values"], dtype=field["dtype"])
               for key, field in expected["observations"].items()}
    else:
        box = Dataset.open(legacy_copy / "data" / "gotolocal-bot")
        obs = box.observations(np.arange(box.num_transitions))
    got = RECORD.agent_record(legacy_copy / "runfolders" / run, obs)[sub]
    want = expected[sub]
    np.testing.assert_allclose(got["probabilities"], want["probabilities"],
                               rtol=0, atol=PROBABILITY_ATOL)
    assert want["smallest_top2_margin"] > 100 * PROBABILITY_ATOL
    assert got["greedy_actions"] == want["greedy_actions"]
    assert got["sampled_actions"] == want["sampled_actions"]

    folder = legacy_copy / "runfolders" / run
    agent_class = read_config(folder / sub, device="cpu").agent_class()
    load = agent_class.load if sub == "agent" else agent_class.load_checkpoint
    agent = load(folder / sub, device="cpu")
    env = gymnasium.make(json.loads((folder / "config.json").read_text())["env_id"])
    # The checkpoint's space encoding decodes to the env's own spaces, bounds included.
    assert agent.observation_space == env.observation_space
    assert agent.action_space == env.action_space


def test_gengap_eval_on_legacy_run_folders(legacy_copy: Path):
    assert main(["eval", f"runfolders/{PPO_RUN}", "--split", "test", "--episodes", "2"]) == 0
    assert main(["eval", f"runfolders/{BC_RUN}", "--split", "test", "--episodes", "6",
                 "--sampled"]) == 0
    from gengap.eval.store import ResultsStore

    with ResultsStore(legacy_copy / "runfolders" / "gengap.sqlite") as store:
        got = {PPO_RUN: store.episodes(PPO_RUN, tag="eval-greedy"),
               BC_RUN: store.episodes(BC_RUN, tag="eval-sampled")}
    assert got == EXPECTED["eval"]
    assert any(episode["success"] for episode in got[BC_RUN])  # not a trivially equal table


def test_gengap_report_on_legacy_run_folders(legacy_copy: Path):
    assert main(["report", f"runfolders/{PPO_RUN}", f"runfolders/{BC_RUN}", "-o",
                 "report"]) == 0
    report = (legacy_copy / "report" / "report.md").read_text()
    assert report == (LEGACY / "expected" / "report.md").read_text()
    got = json.loads((legacy_copy / "report" / "summary.json").read_text())
    want = json.loads((LEGACY / "expected" / "summary.json").read_text())
    assert _numbers_close(got, want), "summary.json differs from the one written before"


def _numbers_close(got: Any, want: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(got, dict) and got.keys() == want.keys() and all(
            _numbers_close(got[key], want[key]) for key in want)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(
            _numbers_close(a, b) for a, b in zip(got, want, strict=True))
    if isinstance(want, float):
        return isinstance(got, int | float) and got == pytest.approx(want, rel=1e-9, abs=1e-12)
    return bool(got == want)
