"""A planner that reads its own stage's results (the `grow` test stage) runs to completion locally, survives SIGKILLs
of the coordinator between and during rounds, and never commits a unit twice. The same study on the Slurm test cluster
and on a real local Ray is in test_executor_slurm.py and test_executor_ray.py (each executor's tests in one file, so
that parallel test workers never run two of them at once)."""

from __future__ import annotations

import pytest
from planner_runs import explore_with_kills


@pytest.mark.slow
def test_own_results_planner_locally_with_coordinator_kills(tmp_path):
    explore_with_kills(tmp_path)
