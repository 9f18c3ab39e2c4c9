"""A warm local worker: one long-lived process that imports lowloss and torch once and runs unit after unit.

``python -m lowloss.orchestrator.runtime.worker`` reads one JSON line per unit from stdin (``{"store": DIR, "task":
UnitTask, "cpus": N}``) and answers on the file descriptor named by ``LOWLOSS_WORKER_FD`` with one JSON line per unit
it ran (``{"uid": ..., "state": ..., "retire": bool}``). It runs one unit at a time through ``Node`` (the bootstrap a
fresh process, a Slurm task and a Ray task use too), and keeps only its dataset cache between units. It retires
(exits 0 after answering) when it has run ``--max-units`` units, when its resident memory passed ``--max-rss-mb``, or
when it was asked to stop (SIGTERM/SIGUSR2: the running unit checkpoints and its attempt ends as ``preempted``, as in a
fresh process). End of stdin (the coordinator closed it or died) ends it too; it also dies with the coordinator
(``PR_SET_PDEATHSIG``, set by the executor).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .node import Node
from .process import rss_mb
from .task import UnitTask


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lowloss.orchestrator.runtime.worker")
    p.add_argument("--max-units", type=int, default=0, help="retire after this many units (0: never)")
    p.add_argument("--max-rss-mb", type=float, default=0.0, help="retire once resident memory exceeds this (0: never)")
    args = p.parse_args(argv)
    out_fd = int(os.environ.pop("LOWLOSS_WORKER_FD"))
    os.set_inheritable(out_fd, False)  # a unit's own subprocesses never see the answer pipe
    answers = os.fdopen(out_fd, "w", buffering=1)
    node = Node(warm=True)
    node.listen()
    done = 0
    for line in sys.stdin:
        msg = json.loads(line)
        task = UnitTask.from_json(msg["task"])
        outcomes = node.run(msg["store"], [task], "local", None, int(msg.get("cpus", 1)))
        if not outcomes:  # asked to stop before it began
            break
        done += 1
        retire = (
            node.stop_requested() is not None
            or (args.max_units > 0 and done >= args.max_units)
            or (args.max_rss_mb > 0 and rss_mb() > args.max_rss_mb)
        )
        answers.write(json.dumps({"uid": task.uid, "state": outcomes[0].value, "retire": retire}) + "\n")
        if retire:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
