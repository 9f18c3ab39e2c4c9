"""The live view at scale: per-stage counts with rate and ETA, periodic summaries off a terminal, per-unit detail in
the store's log, failures on the console."""

from __future__ import annotations

import io

from rich.console import Console

from lowloss.orchestrator.engine.graph import Unit
from lowloss.orchestrator.engine.progress import Reporter
from lowloss.orchestrator.store import Store


def _units(stage: str, n: int) -> dict:
    return {f"{stage}{i:017d}": Unit(f"{stage}{i:017d}", "noop", 1, {}, {}, stage, f"i={i}") for i in range(n)}


def test_off_a_terminal_one_summary_line_per_period_and_unit_detail_only_in_the_log(tmp_path):
    store = Store(tmp_path)
    out = io.StringIO()
    reporter = Reporter(store, console=Console(file=out, width=200), live=False, summary_every_s=0.0)
    modes, pairs = _units("mod", 40), _units("lmc", 780)
    reporter.start({**modes, **pairs}, reused={next(iter(modes))})
    for uid in list(modes)[1:]:
        reporter.started(modes[uid])
        reporter.finished(modes[uid], "done")
    reporter.finished(pairs[next(iter(pairs))], "failed", "boom")
    reporter.stop()
    text = out.getvalue()
    assert "1 of 820 units already committed" in text
    assert "failed lmc i=0" in text and "boom" in text  # a failure reaches the console
    assert "done mod" not in text  # 39 done units: no line each
    last = [ln for ln in text.splitlines() if "units done" in ln][-1]
    assert "40/820 units done" in last and "mod 40/40" in last and "lmc 0/780 (1 failed" in last and "ETA" in last
    log = (tmp_path / "logs" / "coordinator.log").read_text()
    assert log.count("done mod") == 39 and log.count("started mod") == 39 and "failed lmc i=0" in log


def test_a_planner_that_adds_units_grows_its_stage(tmp_path):
    out = io.StringIO()
    reporter = Reporter(Store(tmp_path), console=Console(file=out, width=200), live=False, summary_every_s=3600)
    reporter.start(_units("mst", 3), reused=set())
    reporter.add_units(_units("mst", 5))
    reporter.stop()
    assert "planner added 2 units (mst)" in out.getvalue() and "0/5 units done" in out.getvalue()


def test_on_a_terminal_one_bar_per_stage(tmp_path):
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=True)
    reporter = Reporter(Store(tmp_path), console=console, live=True)
    units = {**_units("modes", 4), **_units("lmc", 6)}
    reporter.start(units, reused=set())
    for unit in list(units.values())[:5]:
        reporter.started(unit)
        reporter.finished(unit, "done")
    reporter.stop()
    text = out.getvalue()
    assert "modes" in text and "4/4" in text and "lmc" in text and "1/6" in text
