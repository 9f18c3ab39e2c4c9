"""``python -m lowloss.orchestrator.runtime STORE TASK [TASK...]``: run units in a fresh process, in sequence (a TASK is
the JSON of a ``UnitTask``); prints their outcomes as one JSON line, exits 0 when every unit is done."""

import json
import os
import sys

from .node import Node
from .task import UnitOutcome, UnitTask


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m lowloss.orchestrator.runtime STORE TASK [TASK...]", file=sys.stderr)
        return 2
    tasks = [UnitTask.from_json(json.loads(arg)) for arg in argv[1:]]
    node = Node()
    node.listen()
    outcomes = node.run(argv[0], tasks, os.environ.get("LOWLOSS_EXECUTOR", "local"), os.environ.get("LOWLOSS_JOB_ID"))
    print(json.dumps({"states": [o.value for o in outcomes]}))
    return 0 if len(outcomes) == len(tasks) and all(o is UnitOutcome.DONE for o in outcomes) else 1


sys.exit(main(sys.argv[1:]))
