"""lowloss: explore the low-loss space of neural networks at cluster scale."""

import os as _os
import signal as _signal

__version__ = "0.1.0"

# Stop signals that reached a Slurm job of lowloss before its runtime's own handlers were in place. lowloss is first
# imported inside such a job while submitit loads the job's pickle, a second or two before a unit starts; Slurm may
# send the time-limit warning (SIGUSR2) up to 60 s earlier than asked, so it can come then, and its default action
# would kill the task before anything could checkpoint. Recorded here, it asks the runtime to requeue at once instead.
EARLY_STOPS: list[int] = []


def _early_stop(signum, frame) -> None:
    EARLY_STOPS.append(signum)


if _os.environ.get("SUBMITIT_EXECUTOR") == "slurm" and _os.environ.get("SLURM_JOB_ID"):
    _signal.signal(_signal.SIGUSR2, _early_stop)
