"""Online RL agents backed by Stable-Baselines3, with pickle-free, resumable checkpoints.

:class:`SB3Agent` owns an SB3 model built from spaces alone (``_init_setup_model=False``,
as SB3's own ``load`` does), so a loaded agent acts without any env. ``learn`` connects
a Gymnasium vector env through :func:`gengap.envs.sb3.to_sb3` (rebuilding the model,
weights and optimizer kept, when the number of envs changes) and trains with
``reset_num_timesteps=False``, so a resumed agent continues its step count and its
learning-rate schedule. Checkpoints never use SB3's cloudpickled zip files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, Self

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecEnv, VecNormalize, VecTransposeImage

from gengap.agents import checkpoint as ckpt
from gengap.agents.base import (
    AGENT_FILE,
    CONFIG_FILE,
    WEIGHTS_FILE,
    Hook,
    OnlineAgent,
    read_config,
    resolve_device,
)
from gengap.agents.history import EpisodeHistory
from gengap.core import checks
from gengap.core.errors import InputError
from gengap.core.files import atomic_directory, read_json
from gengap.core.spaces import space_from_dict, space_to_dict
from gengap.envs.sb3 import to_sb3

STATE_FILE = "training_state.json"
OPTIMIZER_FILE = "optimizers.safetensors"  # + optimizers.json (see ckpt.save_tensor_state)
REPLAY_FILE = "replay_buffer.safetensors"
# 2: optimizer state as safetensors + JSON (1 used torch.save). Weights are unchanged, so
# load() reads both; load_checkpoint() resumes only the current format.
FORMAT_VERSION = 2



class SB3ModelConfig(Protocol):
    """What :class:`SB3Agent` needs from its config (``sb3_agents.SB3Config`` provides it).

    A protocol rather than an import: ``sb3_agents`` builds on this module, so this
    module must not import it back.
    """

    seed: int
    device: str
    gamma: float
    normalize_reward: bool

    @property
    def algo(self) -> str: ...

    @property
    def sb3_class(self) -> Callable[..., BaseAlgorithm]: ...

    @property
    def action_space_types(self) -> tuple[type[gymnasium.Space[Any]], ...]: ...

    def check_action_space(
        self, action_space: gymnasium.Space[Any], env_id: str | None = None
    ) -> None: ...

    def policy_kwargs(self, observation_space: gymnasium.Space[Any]) -> dict[str, Any]: ...

    def sb3_kwargs(self, n_envs: int) -> dict[str, Any]: ...

    def to_dict(self) -> dict[str, Any]: ...


# Counters SB3 keeps outside tensors that decide what training does next.
_COUNTERS = ("_n_updates", "_episode_num", "_n_calls", "exploration_rate")


def policy_observation_space(space: gymnasium.Space[Any]) -> gymnasium.Space[Any]:
    """The space SB3's policy sees: channel-last images transposed, as VecTransposeImage does."""
    if isinstance(space, spaces.Dict):
        return spaces.Dict({k: policy_observation_space(v) for k, v in space.spaces.items()})
    if isinstance(space, spaces.Box) and is_image_space(space):
        if not is_image_space_channels_first(space):
            return VecTransposeImage.transpose_space(space)
    return space


class _HookCallback(BaseCallback):
    """Calls ``hook(num_timesteps)`` after every vector step; False stops training."""

    def __init__(self, hook: Hook) -> None:
        super().__init__()
        self._hook = hook

    def _on_step(self) -> bool:
        keep_going = self._hook(self.num_timesteps)
        if not isinstance(keep_going, bool | np.bool_):
            raise TypeError(f"hook must return a bool (False stops training), got {keep_going!r}")
        return bool(keep_going)


def _recursive_getattr(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


class SB3Agent(OnlineAgent):
    """An :class:`OnlineAgent` whose learning is done by an SB3 algorithm.

    Args:
        config: The algorithm config.
        observation_space: Single-env observation space.
        action_space: Single-env action space.
        n_envs: Number of envs the model's buffers are sized for (``learn`` adapts it).

    Attributes:
        device: The torch device the model is on (``config.device`` resolved).

    Raises:
        InputError: If the algorithm does not support ``action_space``, or the config's
            device is not available.
    """

    config: SB3ModelConfig  # type: ignore[assignment]

    def __init__(
        self,
        config: SB3ModelConfig,
        observation_space: gymnasium.Space[Any],
        action_space: gymnasium.Space[Any],
        *,
        n_envs: int = 1,
    ) -> None:
        config.check_action_space(action_space)
        self.config = config
        self.observation_space = observation_space
        self.action_space = action_space
        self.device = resolve_device(config.device)
        self._return_rms: RunningMeanStd | None = None
        self._pending_rng: dict[str, Any] | None = None
        self._connected: Any = None
        self.model = self._build_model(n_envs)

    # -- model --------------------------------------------------------------------------
    def _build_model(self, n_envs: int) -> BaseAlgorithm:
        model_space = policy_observation_space(self.observation_space)
        policy = "MultiInputPolicy" if isinstance(model_space, spaces.Dict) else "MlpPolicy"
        model = self.config.sb3_class(
            policy,
            env=None,
            device=self.device,
            seed=self.config.seed,
            verbose=0,
            policy_kwargs=self.config.policy_kwargs(model_space),
            _init_setup_model=False,
            **{**self.config.sb3_kwargs(n_envs), **self._space_dependent_kwargs()},
        )
        model.observation_space = model_space
        model.action_space = self.action_space
        model.n_envs = n_envs
        model._setup_model()
        return model

    def _space_dependent_kwargs(self) -> dict[str, Any]:
        """SB3 arguments SB3 would otherwise derive from an env (the model has none)."""
        return {}

    @property
    def num_timesteps(self) -> int:  # type: ignore[override]
        return int(self.model.num_timesteps)

    @num_timesteps.setter
    def num_timesteps(self, value: int) -> None:
        self.model.num_timesteps = int(value)

    def _optimizer_state(self) -> dict[str, Any]:
        """Every torch object but the policy weights that SB3 saves (optimizers, ent coef)."""
        names, variables = self.model._get_torch_save_params()
        state: dict[str, Any] = {
            name: _recursive_getattr(self.model, name).state_dict()
            for name in names if name != "policy"
        }
        for name in variables or []:
            state[name] = _recursive_getattr(self.model, name).detach().clone()
        return state

    def _load_optimizer_state(self, state: dict[str, Any]) -> None:
        names, variables = self.model._get_torch_save_params()
        expected = {n for n in names if n != "policy"} | set(variables or [])
        if set(state) != expected:
            raise InputError(f"checkpoint optimizer state has {sorted(state)}, "
                             f"this {self.config.algo} model needs {sorted(expected)}")
        for name, value in state.items():
            target = _recursive_getattr(self.model, name)
            if isinstance(target, torch.Tensor):
                target.data.copy_(value)
            else:
                target.load_state_dict(value)

    def _counters(self) -> dict[str, Any]:
        return {k: getattr(self.model, k) for k in _COUNTERS if hasattr(self.model, k)}

    def _rebuild(self, n_envs: int) -> None:
        """Resize the model's buffers for ``n_envs`` envs, keeping weights and optimizers."""
        buffer = getattr(self.model, "replay_buffer", None)
        if buffer is not None and (buffer.full or buffer.pos > 0):
            raise InputError(f"this agent's replay buffer holds data for {self.model.n_envs} "
                             f"envs; continue training with that many envs, not {n_envs}")
        weights = {k: v.clone() for k, v in self.model.policy.state_dict().items()}
        optimizers, counters = self._optimizer_state(), self._counters()
        num_timesteps = self.num_timesteps
        self.model = self._build_model(n_envs)
        self.model.policy.load_state_dict(weights)
        self._load_optimizer_state(optimizers)
        for key, value in counters.items():
            setattr(self.model, key, value)
        self.num_timesteps = num_timesteps

    # -- acting -------------------------------------------------------------------------
    def _check_batch(self, obs: Any) -> int:
        def check(space: gymnasium.Space[Any], value: Any, name: str) -> int:
            shape, expected = np.shape(value), tuple(space.shape or ())
            if len(shape) != len(expected) + 1 or tuple(shape[1:]) != expected:
                raise ValueError(f"{name} must be a batch of shape (N, *{space.shape}), "
                                 f"got shape {shape}")
            return int(shape[0])

        if isinstance(self.observation_space, spaces.Dict):
            if not isinstance(obs, dict) or set(obs) != set(self.observation_space.spaces):
                raise ValueError(f"obs must be a dict with keys {sorted(self.observation_space)}")
            sizes = {check(s, obs[k], f"obs[{k!r}]") for k, s in self.observation_space.items()}
            if len(sizes) != 1:
                raise ValueError(f"obs entries have different batch sizes: {sorted(sizes)}")
            return sizes.pop()
        return check(self.observation_space, obs, "obs")

    def act(
        self,
        obs: Any,
        deterministic: bool = True,
        histories: Sequence[EpisodeHistory] | None = None,
    ) -> np.ndarray:
        """Actions for a batch of observations.

        Args:
            obs: Observations with a leading batch axis (a dict of such arrays for Dict spaces).
            deterministic: Most likely action if True, else a sample from the policy.

        Returns:
            One action per observation: shape ``(N, *action_space.shape)``.

        Raises:
            ValueError: If ``obs`` is not a batch of the observation space's shape.
        """
        self._check_batch(obs)
        actions, _ = self.model.policy.predict(obs, deterministic=deterministic)
        return np.asarray(actions)

    # -- learning -----------------------------------------------------------------------
    def _connect(self, env: gymnasium.vector.VectorEnv | VecEnv) -> None:
        if env is self._connected:
            return
        venv = env if isinstance(env, VecEnv) else to_sb3(env)
        if self.config.normalize_reward:
            normalized = VecNormalize(venv, norm_obs=False, norm_reward=True,
                                      gamma=self.config.gamma)
            if self._return_rms is not None:
                normalized.ret_rms = self._return_rms
            self._return_rms = normalized.ret_rms
            venv = normalized
        if venv.num_envs != self.model.n_envs:
            self._rebuild(venv.num_envs)
        # A resumed run must not replay the levels it started with.
        venv.seed(self.config.seed + self.num_timesteps)
        self.model.set_env(venv, force_reset=True)
        self._connected = env

    def learn(
        self,
        env: gymnasium.vector.VectorEnv | VecEnv,
        total_timesteps: int,
        hook: Hook | None = None,
        *,
        log_dir: str | Path | None = None,
    ) -> None:
        """Train until ``num_timesteps >= total_timesteps``.

        A resumed agent trains only the remaining steps; a linear learning-rate schedule
        runs from 0 to ``total_timesteps`` across resumes. The env is seeded with
        ``config.seed + num_timesteps`` when first connected.

        Args:
            env: A Gymnasium vector env in SAME_STEP autoreset mode (``gengap.envs.make``
                builds them so), or an SB3 ``VecEnv``. Passing the same env again continues
                its episodes; a new env is reset.
            total_timesteps: Env steps (over all vector envs) to reach.
            hook: Called with ``num_timesteps`` after every vector step; return False to stop.
            log_dir: If given, SB3 writes its training scalars there for TensorBoard.

        Raises:
            ValueError: If ``total_timesteps`` is negative, or the env's spaces differ.
        """
        checks.non_negative_int("total_timesteps", total_timesteps)
        self._connect(env)
        if log_dir is not None:
            self.model.set_logger(configure(str(log_dir), ["tensorboard"]))
        if self._pending_rng is not None:
            ckpt.restore_rng_state(self._pending_rng["global"])
            self.model.action_space.np_random.bit_generator.state = self._pending_rng["action"]
            self._pending_rng = None
        remaining = total_timesteps - self.num_timesteps
        if remaining <= 0:
            return
        callback = _HookCallback(hook) if hook is not None else None
        self.model.learn(remaining, callback=callback, reset_num_timesteps=False)

    # -- saving -------------------------------------------------------------------------
    def _write_agent_files(self, directory: Path) -> None:
        ckpt.write_json(directory / CONFIG_FILE, self.config.to_dict())
        ckpt.write_json(directory / AGENT_FILE, {
            "format_version": FORMAT_VERSION,
            "num_timesteps": self.num_timesteps,
            "observation_space": space_to_dict(self.observation_space),
            "action_space": space_to_dict(self.action_space),
        })
        ckpt.save_weights(self.model.policy, directory / WEIGHTS_FILE)

    def save(self, path: str | Path) -> None:
        """Write config.json, agent.json and model.safetensors to directory ``path``."""
        with atomic_directory(path) as staging:
            self._write_agent_files(staging)

    @classmethod
    def _from_directory(cls, path: str | Path, device: str, n_envs: int = 1) -> Self:
        directory = Path(path)
        config = read_config(directory, device=device)
        if config.agent_class() is not cls:
            raise InputError(f"{directory} holds a {config.algo!r} agent, not a {cls.__name__}")
        meta = read_json(directory / AGENT_FILE, "agent file")
        observation_space = space_from_dict(meta["observation_space"])
        action_space = space_from_dict(meta["action_space"])
        agent = cls(config, observation_space, action_space, n_envs=n_envs)  # type: ignore[arg-type]
        ckpt.load_weights(agent.model.policy, directory / WEIGHTS_FILE, agent.device)
        agent.num_timesteps = meta["num_timesteps"]
        return agent

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Self:
        """Load an agent (or the policy of a checkpoint) saved in directory ``path``."""
        return cls._from_directory(path, device)

    def save_checkpoint(self, path: str | Path) -> None:
        """Atomically write weights, optimizers, counters, RNG states, return-normalization
        statistics and (off-policy) the replay buffer to directory ``path``."""
        with atomic_directory(path) as staging:
            self._write_agent_files(staging)
            ckpt.save_tensor_state(self._optimizer_state(), staging / OPTIMIZER_FILE)
            rms = self._return_rms
            state = {
                "num_timesteps": self.num_timesteps,
                "n_envs": self.model.n_envs,
                "counters": self._counters(),
                "rng": {"global": ckpt.capture_rng_state(),
                        "action": self.model.action_space.np_random.bit_generator.state},
                "return_rms": None if rms is None else {
                    "mean": float(rms.mean), "var": float(rms.var), "count": float(rms.count)},
            }
            ckpt.write_json(staging / STATE_FILE, state)
            model = self.model
            if isinstance(model, OffPolicyAlgorithm) and getattr(
                self.config, "checkpoint_replay_buffer", False
            ):
                ckpt.save_replay_buffer(model.replay_buffer, staging / REPLAY_FILE)

    @classmethod
    def load_checkpoint(cls, path: str | Path, device: str = "auto") -> Self:
        """Rebuild an agent from :meth:`save_checkpoint`, ready for ``learn`` to continue.

        Raises:
            InputError: For a checkpoint of another format version, or a damaged file
                (naming it).
        """
        directory = Path(path)
        version = read_json(directory / AGENT_FILE, "agent file").get("format_version")
        if version != FORMAT_VERSION:
            raise InputError(
                f"{directory} is a format {version} checkpoint; this gengap resumes format "
                f"{FORMAT_VERSION} only (its agent still loads for evaluation with load_agent)"
            )
        state = read_json(directory / STATE_FILE, "training state")
        agent = cls._from_directory(directory, device, n_envs=state["n_envs"])
        agent._load_optimizer_state(ckpt.load_tensor_state(directory / OPTIMIZER_FILE,
                                                           agent.device))
        for key, value in state["counters"].items():
            setattr(agent.model, key, value)
        agent.num_timesteps = state["num_timesteps"]
        if state["return_rms"] is not None:
            rms = RunningMeanStd(shape=())
            rms.mean = np.asarray(state["return_rms"]["mean"], dtype=np.float64)
            rms.var = np.asarray(state["return_rms"]["var"], dtype=np.float64)
            rms.count = state["return_rms"]["count"]
            agent._return_rms = rms
        model = agent.model
        if isinstance(model, OffPolicyAlgorithm) and (directory / REPLAY_FILE).is_file():
            ckpt.load_replay_buffer(model.replay_buffer, directory / REPLAY_FILE)
        agent._pending_rng = state["rng"]
        return agent


__all__ = ["SB3Agent", "policy_observation_space"]
