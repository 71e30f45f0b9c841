"""Minari and d3rlpy interop for gengap datasets: lossless export and import.

Minari 0.5.3 JPEG-encodes uint8 HxWx3 images (>= 32 px) in both of its backends, with no
switch; images written channel-first are not recognised as images and its arrow backend
stores them exactly. :func:`to_minari` therefore exports images as CxHxW (and records
which fields it turned) and :func:`from_minari` turns them back. d3rlpy needs images
channel-first too.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import gymnasium
import numpy as np
from gymnasium import spaces

from gengap.core.errors import InputFileExistsError, InputFileNotFoundError
from gengap.core.files import atomic_write_text, read_json
from gengap.core.spaces import space_from_dict
from gengap.offline.dataset import (
    DEFAULT_CHUNK_ROWS,
    DEFAULT_CODEC,
    Dataset,
    DatasetWriter,
)

__all__ = ["from_minari", "to_d3rlpy", "to_minari"]


F = TypeVar("F", bound=Callable[..., Any])


def _absolute_minari_path(function: F) -> F:
    """Minari 0.5.3 joins a relative MINARI_DATASETS_PATH onto itself when it writes; hand it
    the absolute path while ``function`` runs."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        saved = os.environ.get("MINARI_DATASETS_PATH")
        if saved:
            os.environ["MINARI_DATASETS_PATH"] = str(Path(saved).resolve())
        try:
            return function(*args, **kwargs)
        finally:
            if saved is not None:
                os.environ["MINARI_DATASETS_PATH"] = saved

    return wrapper  # type: ignore[return-value]


@_absolute_minari_path
def to_minari(dataset: Dataset, dataset_id: str, *, author: str = "gengap") -> Any:
    """Export to a Minari dataset (arrow backend, lossless) and return it.

    Images are written channel-first (CxHxW), the layout Minari 0.5.3 stores losslessly
    (HxWxC uint8 images are JPEG-encoded); :func:`from_minari` turns them back. The
    gengap card rides along as ``gengap_card.json`` in the Minari dataset folder, and
    every step's level seed as the ``level_seed`` info. Episodes stream one by one.

    Args:
        dataset_id: Minari id, e.g. ``"gengap/procgen-chaser/random-v0"``.
        author: Author recorded in Minari's metadata.

    Raises:
        InputError: If the id is taken.
    """
    import minari
    from minari.data_collector import EpisodeBuffer
    from minari.storage import get_dataset_path

    if dataset_id in minari.list_local_datasets():
        raise InputFileExistsError(f"Minari dataset {dataset_id!r} already exists")
    images = set(dataset.image_fields())
    observation_space = _minari_space(dataset.observation_space, images)
    env_spec = _env_spec(dataset)

    def buffers() -> Iterator[Any]:
        for index, episode in enumerate(dataset.episodes()):
            length = len(episode["actions"])
            yield EpisodeBuffer(
                id=index,
                observations=_to_chw(episode["observations"], images),
                actions=list(episode["actions"]),
                rewards=list(episode["rewards"]),
                terminations=list(episode["terminations"]),
                truncations=list(episode["truncations"]),
                # (T + 1, 1): Minari 0.5.3's arrow backend cannot decode 1-D info arrays
                infos={"level_seed": np.full((length + 1, 1), episode["level_seed"], np.int64)},
            )

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exported = minari.create_dataset_from_buffers(
            dataset_id,
            buffers(),  # type: ignore[arg-type]  # iterated once: episodes stream
            env=env_spec,
            observation_space=observation_space,
            action_space=dataset.action_space,
            algorithm_name=str(dataset.card.get("policy", {}).get("name", "unknown")),
            author=author,
            code_permalink="https://github.com/gengap",
            description=f"gengap dataset exported from {dataset.path.name}; images channel-"
            f"first: {sorted(images)}",
            data_format="arrow",
        )
    card = {**dataset.card, "minari_channel_first": sorted(images)}
    combinations = dataset.episode_combinations()
    if combinations is not None:
        card["minari_episode_combinations"] = combinations
    card["minari_episode_success"] = dataset.episode_success()
    atomic_write_text(
        Path(get_dataset_path(dataset_id)) / "gengap_card.json", json.dumps(card, indent=2)
    )
    return exported


def _env_spec(dataset: Dataset) -> Any:
    """The Gymnasium spec of the env the data came from (so Minari can recover it)."""
    env_id = dataset.env_id
    if env_id is None or env_id not in gymnasium.registry:
        return None
    spec = gymnasium.spec(env_id)
    kwargs = {**spec.kwargs, **dataset.card.get("env_options", {}), "part": "train"}
    if dataset.card.get("split") is not None:
        kwargs["split"] = dataset.card["split"]
    from dataclasses import replace

    # d3rlpy's get_minari wraps the recovered env in a TimeLimit and needs a number; gengap
    # envs end their own episodes, so a limit the env never reaches is harmless.
    limit = spec.max_episode_steps or dataset.card.get("max_episode_steps") or 10**9
    return replace(spec, kwargs=kwargs, max_episode_steps=int(limit))


def to_d3rlpy(dataset: Dataset) -> Any:
    """An in-memory ``d3rlpy.dataset.MDPDataset`` (images channel-first, as d3rlpy needs).

    Box observations become one array; Dict observations a tuple of arrays in key order.
    Each episode's final observation is dropped (d3rlpy keeps ``T`` per episode), and an
    episode's end is a terminal or a timeout exactly as recorded. This holds every
    frame in RAM: for large image datasets feed learners through ``transitions`` instead.
    """
    from d3rlpy.dataset import MDPDataset

    images = set(dataset.image_fields())
    everything = np.arange(dataset.num_transitions)
    observations = dataset.observations(everything)

    def channel_first(key: str, values: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(values.transpose(0, 3, 1, 2)) if key in images else values

    if isinstance(observations, dict):
        d3_observations: Any = tuple(channel_first(k, v) for k, v in observations.items())
    else:
        d3_observations = channel_first("", observations)
    steps = dataset.step_arrays()
    actions = np.asarray(steps["actions"])
    return MDPDataset(
        observations=d3_observations,
        actions=actions if actions.ndim > 1 else actions.reshape(-1, 1),
        rewards=np.asarray(steps["rewards"]).reshape(-1, 1),
        terminals=np.asarray(steps["terminations"], dtype=np.float32),
        timeouts=np.asarray(steps["truncations"], dtype=np.float32),
        action_space=_d3rlpy_action_space(dataset.action_space),
    )


def _d3rlpy_action_space(space: gymnasium.Space[Any]) -> Any:
    from d3rlpy.constants import ActionSpace

    return ActionSpace.DISCRETE if isinstance(space, spaces.Discrete) else ActionSpace.CONTINUOUS


def _minari_space(space: gymnasium.Space[Any], images: set[str]) -> gymnasium.Space[Any]:
    def chw(box: spaces.Box) -> spaces.Box:
        return spaces.Box(
            box.low.transpose(2, 0, 1),
            box.high.transpose(2, 0, 1),
            dtype=box.dtype,  # type: ignore[arg-type]
        )

    if isinstance(space, spaces.Dict):
        return spaces.Dict(
            {
                k: chw(s) if k in images and isinstance(s, spaces.Box) else s
                for k, s in space.spaces.items()
            }
        )
    return chw(space) if "" in images and isinstance(space, spaces.Box) else space


def _to_chw(observations: Any, images: set[str]) -> Any:
    if isinstance(observations, dict):
        return {
            k: np.ascontiguousarray(v.transpose(0, 3, 1, 2)) if k in images else v
            for k, v in observations.items()
        }
    return (
        np.ascontiguousarray(observations.transpose(0, 3, 1, 2)) if "" in images else observations
    )


def _from_chw(observations: Any, images: set[str]) -> Any:
    if isinstance(observations, dict):
        return {
            k: np.ascontiguousarray(v.transpose(0, 2, 3, 1)) if k in images else v
            for k, v in observations.items()
        }
    return (
        np.ascontiguousarray(observations.transpose(0, 2, 3, 1)) if "" in images else observations
    )


@_absolute_minari_path
def from_minari(
    dataset_id: str,
    path: str | Path,
    *,
    codec: str = DEFAULT_CODEC,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Dataset:
    """Import a Minari dataset into a gengap dataset at ``path``.

    A dataset exported by :func:`to_minari` comes back exactly (images turned back
    to HxWxC, the card and level seeds restored, checksums recomputed). Any other Minari
    dataset is imported with its spaces as they are, level seed ``-1`` unless its step
    infos carry ``level_seed``, and a card naming the Minari id.

    Raises:
        InputError: If the Minari dataset does not exist (listing the local ones) or
            ``path`` exists.
    """
    import minari
    from minari.storage import get_dataset_path

    local = minari.list_local_datasets()
    if dataset_id not in local:
        from gengap.core.errors import unknown_name_message

        raise InputFileNotFoundError(unknown_name_message("Minari dataset", dataset_id, local))
    source = minari.load_dataset(dataset_id)
    card_path = Path(get_dataset_path(dataset_id)) / "gengap_card.json"
    if card_path.is_file():
        card = read_json(card_path, "Minari dataset's gengap card")
        images = set(card.pop("minari_channel_first", []))
        combinations = card.pop("minari_episode_combinations", None)
        successes = card.pop("minari_episode_success", None)
        observation_space = space_from_dict(card["observation_space"])
        action_space = space_from_dict(card["action_space"])
        keep = {k: v for k, v in card.items() if k not in _COMPUTED_CARD_KEYS}
    else:
        images, combinations, successes = set(), None, None
        observation_space, action_space = source.observation_space, source.action_space
        keep = {"env_id": None, "source": {"minari": dataset_id}}
    with DatasetWriter(
        path, observation_space, action_space, keep, codec=codec, chunk_rows=chunk_rows
    ) as writer:
        for index, episode in enumerate(source.iterate_episodes()):
            infos = episode.infos or {}
            level = int(np.asarray(infos["level_seed"]).ravel()[0]) if "level_seed" in infos else -1
            writer.add_episode(
                _from_chw(episode.observations, images),
                np.asarray(episode.actions),
                np.asarray(episode.rewards),
                np.asarray(episode.terminations),
                np.asarray(episode.truncations),
                level_seed=level,
                combinations=None if combinations is None else combinations[index],
                success=None
                if successes is None or successes[index] is None
                else bool(successes[index]),
            )
    return Dataset.open(path)


_COMPUTED_CARD_KEYS = frozenset(
    {
        "format",
        "format_version",
        "created",
        "num_episodes",
        "num_transitions",
        "episodes_per_level",
        "episodes_per_combination",
        "returns",
        "observation_space",
        "action_space",
        "layout",
        "files",
    }
)
