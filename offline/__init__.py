"""gengap offline: datasets, collection, and learners that train on them.

Importing this package registers the offline learners (``bc``, and the d3rlpy-backed
``cql``, ``bcq``, ``iql``, ``td3bc``, ``dt``).
"""

# Learners (offline-learners): importing registers their algo names.
from gengap.offline.bc import BCAgent, BCConfig  # noqa: E402
from gengap.offline.d3rlpy_agents import (  # noqa: E402
    BCQAgentConfig,
    CQLAgentConfig,
    D3rlpyAgent,
    DTAgentConfig,
    IQLAgentConfig,
    TD3PlusBCAgentConfig,
)

__all__ = [
    "BCAgent",
    "BCConfig",
    "BCQAgentConfig",
    "CQLAgentConfig",
    "D3rlpyAgent",
    "DTAgentConfig",
    "IQLAgentConfig",
    "TD3PlusBCAgentConfig",
]
