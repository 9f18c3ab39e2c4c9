"""Shared helpers: fast study specs on the embedded digits data and a CLI runner."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PLUGINS = Path(__file__).parent / "plugins"

# A suite started in the background by a non-interactive shell (`cmd &`, nohup) inherits SIGINT ignored, and so would
# every lowloss process it starts (Python then installs no Ctrl-C handler): the tests that stop a run with SIGINT need
# it delivered, so their processes start with the default disposition.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# The files that take longest go out first (tests/run.sh: pytest-xdist `--dist loadfile --no-loadscope-reorder`), so
# the short files fill both workers to the end instead of one long file running alone at the end. Only the order
# changes; the rest follow by their number of tests, as pytest-xdist orders them by default.
LONGEST_FIRST = (
    "test_executor_slurm.py",
    "test_executor_ray.py",
    "test_llpf_parity.py",
    "test_stored_bytes.py",
    "test_run_resume.py",
    "test_autoneb.py",
    "test_landscape_kinds.py",
    "test_warm_workers.py",
    "test_faults.py",
    "test_report.py",
)


def pytest_collection_modifyitems(config, items):
    per_file: dict[str, int] = {}
    for item in items:
        per_file[str(item.path)] = per_file.get(str(item.path), 0) + 1

    def place(item) -> tuple:
        name = item.path.name
        rank = LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)
        return rank, -per_file[str(item.path)], str(item.path)

    items.sort(key=place)  # stable: each file keeps its own order


def spec_text(
    name="t",
    seeds="[0, 1]",
    model="mlp",
    epochs=3,
    segment_steps=10,
    stages=None,
    run_extra="",
    train_extra="",
    data_extra="",
) -> str:
    stages = (
        stages
        if stages is not None
        else """
        [[stages]]
        name = "modes"
        kind = "train"

        [[stages]]
        name = "lmc"
        kind = "interpolate"
        from = "modes"
        pairs = "consecutive"
        points = 5
    """
    )
    return textwrap.dedent(f"""
        [study]
        name = "{name}"
        seeds = {seeds}

        [data]
        dataset = "digits"
        {data_extra}

        [model]
        name = "{model}"

        [train]
        optimizer = "sgd"
        lr = 0.05
        momentum = 0.9
        batch_size = 64
        epochs = {epochs}
        segment_steps = {segment_steps}
        {train_extra}

        [run]
        jobs = 2
        retries = 1
        checkpoint_seconds = 0
        {run_extra}
    """) + textwrap.dedent(stages)


# two `emit` stages (seeds 0 and 3) and a `consume` unit reading both: the smallest study with inputs between units
EMIT_CONSUME_STAGES = """
    [[stages]]
    name = "a"
    kind = "emit"
    seeds = [0]

    [[stages]]
    name = "b"
    kind = "emit"
    seeds = [3]

    [[stages]]
    name = "both"
    kind = "consume"
    from = ["a", "b"]
"""


def cli_env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PLUGINS) + os.pathsep + env.get("PYTHONPATH", "")
    env["LOWLOSS_PLUGINS"] = "lowloss_test_plugins"
    env["COLUMNS"] = "200"  # tables as a wide terminal shows them (no wrapped labels)
    env.update(extra)
    return env


def run_cli(*args, check=False, timeout=600, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "lowloss.orchestrator.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=timeout,
        **kw,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"lowloss {' '.join(map(str, args))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def start_cli(*args) -> subprocess.Popen:
    """`lowloss ARGS...` in the background (stdout and stderr together), for tests that kill or watch it."""
    return subprocess.Popen(
        [sys.executable, "-m", "lowloss.orchestrator.cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env(),
    )


def wait_for(predicate, timeout: float = 180.0, interval: float = 0.02):
    """Poll until predicate() is truthy; returns its value."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def sigkill_mid_unit(store: Path, pattern: str, ready, timeout: float = 300.0, interval: float = 0.005) -> bool:
    """SIGKILL the process running a unit under ``store/units/<pattern>`` once ``ready(unit_dir)`` holds and its
    attempt is recorded as running; True when one was killed before ``timeout``."""
    import json
    import os
    import signal
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for unit in store.glob(f"units/{pattern}"):
            if not ready(unit):
                continue
            running = [json.loads(p.read_text()) for p in (unit / "attempts").glob("*.json")]
            running = [a for a in running if a.get("state") == "running"]
            if running:
                os.kill(running[0]["pid"], signal.SIGKILL)
                return True
        time.sleep(interval)
    return False


def segments_of(unit: Path) -> int:
    return len(list((unit / "segments").glob("*.json")))


def digests(store: Path) -> dict[str, str]:
    out = run_cli("verify", store, check=True).stdout
    return dict(re.findall(r"^([0-9a-f]{20})\s+\S+\s+([0-9a-f]{64})$", out, flags=re.M))


@pytest.fixture
def write_spec(tmp_path):
    def write(text: str, name: str = "spec.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture(autouse=True)
def _plugins_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGINS))
    monkeypatch.setenv("LOWLOSS_PLUGINS", "lowloss_test_plugins")
    monkeypatch.setenv("PYTHONPATH", str(PLUGINS) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    import lowloss_test_plugins  # noqa: F401  registers the test kinds in this process too
