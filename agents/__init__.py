"""gengap agents: one interface (:class:`Agent`) for everything that acts.

Importing this package registers the online RL algorithms (``ppo``, ``dqn``, ``sac``) and
the LM-initialized offline policy (``lm``).
"""

from gengap.agents.base import (
    DEFAULT_AGENT_CONFIGS,
    Agent,
    AgentConfig,
    OfflineAgent,
    OnlineAgent,
    TransitionSource,
    agent_config_class,
    agent_config_for_env,
    agent_config_from_dict,
    algos_fitting,
    available_devices,
    default_agent_config,
    load_agent,
    register_agent,
    registered_algos,
    resolve_device,
)
from gengap.agents.lm_policy import LMPolicyAgent, LMPolicyConfig
from gengap.agents.online import SB3Agent
from gengap.agents.sb3_agents import (
    DQNAgent,
    DQNConfig,
    PPOAgent,
    PPOConfig,
    SACAgent,
    SACConfig,
    SB3Config,
)

__all__ = [
    "DEFAULT_AGENT_CONFIGS",
    "Agent",
    "AgentConfig",
    "DQNAgent",
    "DQNConfig",
    "LMPolicyAgent",
    "LMPolicyConfig",
    "OfflineAgent",
    "OnlineAgent",
    "PPOAgent",
    "PPOConfig",
    "SACAgent",
    "SACConfig",
    "SB3Agent",
    "SB3Config",
    "TransitionSource",
    "agent_config_class",
    "agent_config_for_env",
    "agent_config_from_dict",
    "algos_fitting",
    "available_devices",
    "default_agent_config",
    "load_agent",
    "register_agent",
    "registered_algos",
    "resolve_device",
]
