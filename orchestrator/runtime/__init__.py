"""The worker runtime: what runs a unit on a node, the same code on a laptop, in a Slurm job and in a Ray task.
``node`` is the one bootstrap every process that runs units goes through, ``attempt`` one attempt of one unit,
``context`` the ``UnitContext`` a kind sees, ``process`` a fresh process's state, ``signals`` the stop signals,
``worker`` the warm local worker's loop, ``task`` what an executor hands a node."""

from .node import Node
from .process import cuda_problem, rss_mb
from .signals import Preempted, StopSignals, stop_signal
from .task import UnitOutcome, UnitTask

__all__ = ["Node", "Preempted", "StopSignals", "UnitOutcome", "UnitTask", "cuda_problem", "rss_mb", "stop_signal"]
