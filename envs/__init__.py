"""gengap environments: controlled variation, split into training and held-out sets.

Importing this package registers every gengap environment with Gymnasium under
the ``gengap/`` namespace.
"""

from gengap.envs._quiet import import_gym_quietly

import_gym_quietly()

from gengap.envs import babyai as _babyai  # noqa: E402, F401
from gengap.envs import entities as _entities  # noqa: E402, F401
from gengap.envs import metaworld as _metaworld  # noqa: E402, F401
from gengap.envs import minigrid as _minigrid  # noqa: E402, F401
from gengap.envs import mujoco as _mujoco  # noqa: E402, F401
from gengap.envs import procgen as _procgen  # noqa: E402, F401
from gengap.envs import shapes as _shapes  # noqa: E402, F401
from gengap.envs.factory import make, resolve_split  # noqa: E402
from gengap.envs.registry import (  # noqa: E402
    EnvInfo,
    env_info,
    register_env,
    registered_ids,
    suite,
)
from gengap.envs.splits import LevelSet, Split  # noqa: E402

__all__ = [
    "EnvInfo",
    "LevelSet",
    "Split",
    "env_info",
    "make",
    "register_env",
    "registered_ids",
    "resolve_split",
    "suite",
]
