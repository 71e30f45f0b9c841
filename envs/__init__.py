"""gengap environments: controlled variation, split into training and held-out sets.

Importing this package registers every gengap environment with Gymnasium under
the ``gengap/`` namespace.
"""

from gengap.envs import minigrid as _minigrid  # noqa: F401
from gengap.envs import procgen as _procgen  # noqa: F401
from gengap.envs import shapes as _shapes  # noqa: F401
from gengap.envs.factory import make, resolve_split
from gengap.envs.registry import EnvInfo, env_info, register_env, registered_ids, suite
from gengap.envs.splits import LevelSet, Split

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
