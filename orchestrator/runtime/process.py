"""The process a unit runs in: what a fresh process gives a unit (put back before each unit of a process that runs
many), its memory after a unit, the CPUs it was allocated and the device it computes on.

Compute threads are the unit kind's (``Resources.cpus``: 1 for every built-in kind), never the allocation's: the
allocation (``LOWLOSS_CPUS``) only sizes work whose result does not depend on it (image decoding)."""

from __future__ import annotations

import gc
import os
import socket
import sys
from typing import Any


class ProcessState:
    """What a fresh Python process gives a unit, put back before each unit of a process that runs many.

    Made once, before the first unit: the environment and working directory. Torch's state is put back to torch's
    own start-up values, not to a snapshot, so it is right even when the first unit imported torch: the numerics flags
    get their defaults (default dtype, grad mode, deterministic algorithms, TF32, cuDNN benchmark, matmul precision,
    anomaly detection). The global RNGs (torch's CPU and CUDA generators, Python's ``random``, numpy's) are seeded
    from the OS, as torch seeds its default generator at a fresh start: no unit may depend on them unseeded (every
    kind seeds what it draws from its params), and a warm process gives such a bug no more reproducibility than a
    fresh one would."""

    def __init__(self) -> None:
        self.environ = dict(os.environ)
        self.cwd = os.getcwd()
        torch = sys.modules.get("torch")
        self.threads = torch.get_num_threads() if torch is not None else None  # a kind without torch finds these

    def restore(self) -> None:
        import random

        if os.environ != self.environ:
            os.environ.clear()
            os.environ.update(self.environ)
        if os.getcwd() != self.cwd:
            os.chdir(self.cwd)
        random.seed()
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()
        if "torch" in sys.modules:
            torch = sys.modules["torch"]
            _fresh_torch(torch)
            if self.threads is not None and torch.get_num_threads() != self.threads:
                torch.set_num_threads(self.threads)


def _fresh_torch(torch) -> None:
    torch.seed()  # every device's default generator, from OS entropy: what a fresh process starts with
    if torch.get_default_dtype() != torch.float32:
        torch.set_default_dtype(torch.float32)
    torch.set_grad_enabled(True)
    if torch.are_deterministic_algorithms_enabled() or torch.is_deterministic_algorithms_warn_only_enabled():
        torch.use_deterministic_algorithms(False)
    if torch.is_anomaly_enabled():
        torch.autograd.set_detect_anomaly(False)
    if torch.get_float32_matmul_precision() != "highest":
        torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = False


def release_unit_memory() -> None:
    """After a unit: drop what it left behind (cycles, CUDA's cached blocks); the dataset cache stays. What survives
    the collection (modules a unit imported, cached datasets) is frozen, so later collections do not scan it again."""
    gc.collect()
    gc.freeze()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def rss_mb() -> float:
    """This process's resident memory now, in MiB (Linux /proc; 0 where unknown)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def device_for(name: str) -> Any:
    """The torch device ``auto``, ``cpu`` or ``cuda`` names in this process."""
    import torch

    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    problem = cuda_problem()
    if problem is not None:
        raise RuntimeError(f"device cuda: {problem}")
    return torch.device("cuda")


def cuda_problem() -> str | None:
    """Why ``cuda`` cannot be used in this process (None when a GPU is visible) — the test ``auto`` resolves by."""
    import torch

    if torch.cuda.is_available():
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    hidden = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
    return f"torch sees no CUDA GPU on host {socket.gethostname()}{hidden}"


def allocated_cpus() -> int:
    """CPUs the executor allocated to this process (``LOWLOSS_CPUS``; 1 when unset)."""
    try:
        return max(1, int(os.environ.get("LOWLOSS_CPUS", "1")))
    except ValueError:
        return 1
