"""Scheduler state from recorded sacct/squeue output (what Slurm 22–23 print), without a cluster."""

from __future__ import annotations

from lowloss.orchestrator.executors.scheduler import expand_job_ids, parse_sacct, parse_squeue

SACCT = """\
1041_[3-5%2]|PENDING|None assigned|00:00:00|0:0
1041_0|COMPLETED|node1|00:00:12|0:0
1041_1|CANCELLED by 0|node2|00:00:03|0:15
1041_2|NODE_FAIL|node2|00:01:40|1:0
1042|RUNNING|node1|00:00:40|0:0
"""

SQUEUE = """\
1041_[3-5%2]|PENDING||0:00
1041_2|RUNNING|node2|1:40
"""


def test_array_ranges_expand_with_their_throttle():
    assert expand_job_ids("12_[3-5,8%2]") == ["12_3", "12_4", "12_5", "12_8"]
    assert expand_job_ids("77") == ["77"] and expand_job_ids("77_4") == ["77_4"]


def test_sacct_states_per_array_task():
    states = parse_sacct(SACCT, ["1041_0", "1041_1", "1041_2", "1041_4", "1042", "1043_0"])
    assert {j: s.state for j, s in states.items()} == {
        "1041_0": "COMPLETED",
        "1041_1": "CANCELLED",
        "1041_2": "NODE_FAIL",
        "1041_4": "PENDING",
        "1042": "RUNNING",
        "1043_0": "PENDING",
    }  # not in accounting yet: just submitted
    assert states["1041_1"].terminal and states["1041_2"].terminal and not states["1042"].terminal
    assert states["1041_2"].node == "node2" and states["1041_0"].elapsed == "00:00:12"


def test_squeue_reports_a_job_that_left_the_queue_as_ended():
    states = parse_squeue(SQUEUE, ["1041_2", "1041_5", "1041_0"])
    assert {j: s.state for j, s in states.items()} == {"1041_2": "RUNNING", "1041_5": "PENDING", "1041_0": "ENDED"}
    assert states["1041_0"].terminal
