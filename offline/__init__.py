"""Offline data: datasets collected on training levels, and learning from them.

``gengap.offline.dataset`` is the store (:class:`Dataset` implements
``gengap.agents.base.TransitionSource``); ``gengap.offline.collect`` writes datasets by
rolling a policy out on a split's training levels.

Importing this package also registers the offline learners: ``bc`` (behaviour cloning)
and the d3rlpy-backed ``cql``, ``bcq``, ``dt``, ``iql`` and ``td3bc``.
"""

from gengap.offline.dataset import Dataset, DatasetWriter
from gengap.offline.interop import from_minari

# isort: split
# Learners (offline-learners): importing registers their algo names.
from gengap.offline.bc import BCAgent, BCConfig
from gengap.offline.d3rlpy_agents import (
    BCQAgentConfig,
    CQLAgentConfig,
    DTAgentConfig,
    IQLAgentConfig,
    TD3PlusBCAgentConfig,
)

__all__ = [
    "Dataset",
    "DatasetWriter",
    "from_minari",
    # learners
    "BCAgent",
    "BCConfig",
    "BCQAgentConfig",
    "CQLAgentConfig",
    "DTAgentConfig",
    "IQLAgentConfig",
    "TD3PlusBCAgentConfig",
]
