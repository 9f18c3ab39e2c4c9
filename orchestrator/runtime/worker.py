"""A warm local worker: one long-lived process that imports lowloss and torch once and runs unit after unit.

``python -m lowloss.orchestrator.worker`` reads one JSON line per unit from stdin (``{"store": DIR, "uid": ...,
"cpus": N}``) and answers on the file descriptor named by ``LOWLOSS_WORKER_FD`` with one JSON line per unit it ran
(``{"uid": ..., "state": ..., "retire": bool}``). It runs one unit at a time, through the same ``run_unit`` as a fresh
process, with a fresh process's global state put back before each unit (``runtime.ProcessState``), and keeps only its
dataset cache between units. It retires (exits 0 after answering) when it has run ``--max-units`` units, when its
resident memory passed ``--max-rss-mb``, or when it was asked to stop (SIGTERM/SIGUSR2: the running unit checkpoints
and its attempt ends as ``preempted``, as in a fresh process). End of stdin (the coordinator closed it or died) ends
it too; it also dies with the coordinator (``PR_SET_PDEATHSIG``, set by the executor).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lowloss.orchestrator.worker")
    p.add_argument("--max-units", type=int, default=0, help="retire after this many units (0: never)")
    p.add_argument("--max-rss-mb", type=float, default=0.0, help="retire once resident memory exceeds this (0: never)")
    args = p.parse_args(argv)
    out_fd = int(os.environ.pop("LOWLOSS_WORKER_FD"))
    os.set_inheritable(out_fd, False)  # a unit's own subprocesses never see the answer pipe
    answers = os.fdopen(out_fd, "w", buffering=1)

    from ... import jobs  # noqa: F401  the kinds (and LOWLOSS_PLUGINS) once, for every unit

    try:
        import torch  # noqa: F401  once per worker, not once per unit
    except ImportError:
        pass
    from ..store.store import Store
    from . import attempt as runtime

    runtime._Signals.install()
    state = runtime.ProcessState()  # after the imports: what each unit gets back
    gc.freeze()  # what the imports made is never garbage: the collection after each unit skips it
    stores: dict[str, Store] = {}
    done = 0
    for line in sys.stdin:
        if runtime.stop_signal() is not None:
            break
        msg = json.loads(line)
        state.restore()
        os.environ["LOWLOSS_CPUS"] = str(msg.get("cpus", 1))
        try:
            store = stores.get(msg["store"]) or stores.setdefault(msg["store"], Store(msg["store"]))
            result = runtime.run_unit(store, msg["uid"], "local", None)
        finally:
            runtime.release_unit_memory()
        done += 1
        retire = (
            runtime.stop_signal() is not None
            or (args.max_units > 0 and done >= args.max_units)
            or (args.max_rss_mb > 0 and runtime.rss_mb() > args.max_rss_mb)
        )
        answers.write(json.dumps({"uid": msg["uid"], "state": result, "retire": retire}) + "\n")
        if retire:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
