"""Offline data: datasets collected on training levels, and learning from them.

``gengap.offline.dataset`` is the store (:class:`Dataset` implements
``gengap.agents.base.TransitionSource``); ``gengap.offline.collect`` writes datasets by
rolling a policy out on a split's training levels.
"""

from gengap.offline.dataset import Dataset, DatasetWriter
from gengap.offline.interop import from_minari

__all__ = ["Dataset", "DatasetWriter", "from_minari"]
