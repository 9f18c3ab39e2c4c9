"""The AutoNEB stage and edge kinds: the exploration planner (rounds, budget, similar saddles, failed edges, ids that
depend only on the pair and the settings), the recipes, and on real digits modes the paper's claims (saddle below the
linear barrier, minimax bounds, the tree of all edges equals SciPy's) and a coordinator killed mid-exploration."""

from __future__ import annotations

import hashlib
import json
import signal
import time
from pathlib import Path

import pytest
from conftest import digests, run_cli, spec_text, start_cli, wait_for

REPO = Path(__file__).resolve().parents[3]


# ------------------------------------------------------------------------------------------ the planner, in memory


class FakeView:
    """A PlanView over a mode stage with known results and the autoneb stage's own planned units (what the
    orchestrator's planner keeps: every draft once planned, with its content-hash id)."""

    def __init__(self, losses: dict[int, float]):
        from lowloss.jobs import DataParams, ModelParams, PlannedUnit, TrainRecipe
        from lowloss.jobs.train import TrainParams

        self.stage = "mst"
        model, data = ModelParams(name="small_cnn"), DataParams(dataset="digits")
        self.modes = [
            PlannedUnit(
                f"mode{s}", "train", TrainParams(seed=s, model=model, data=data, recipe=TrainRecipe()), f"seed={s}", {}
            )
            for s in losses
        ]
        self.results = {f"mode{s}": {"final_train_loss": v} for s, v in losses.items()}
        self.own: dict[str, object] = {}
        self.gave_up: set[str] = set()

    def absorb(self, plan) -> list[str]:
        """Record a plan's drafts as planned units; returns the ids of the new ones."""
        from lowloss.jobs import PlannedUnit

        new = []
        for d in plan.drafts:
            canonical = d.params.canonical()
            uid = hashlib.sha256(json.dumps([canonical, d.inputs], sort_keys=True).encode()).hexdigest()[:20]
            if uid not in self.own:
                self.own[uid] = PlannedUnit(uid, d.kind, d.params, d.label, dict(d.inputs))
                new.append(uid)
        return new

    def units(self, stage=None):
        return self.modes if stage == "modes" else list(self.own.values())

    def result(self, uid):
        return self.results.get(uid)

    def failed(self, uid):
        return uid in self.gave_up

    def is_open(self, stage):
        return False

    def decided(self, stage):
        return True


def _stage(**table):
    from lowloss.jobs.autoneb import AutoNEBStage

    base = {"from": "modes", "cycles": [{"steps": 5, "lr": 0.1, "insert": "equal", "insert_count": 1}]}
    return AutoNEBStage.model_validate({**base, **table})


def _saddle(pair, minima_losses):
    """A made-up saddle energy of a pair, deterministic (what the edges would return)."""
    a, b = pair
    return 1.0 + 0.1 * abs(a - b) + 0.01 * (a + b)


def _explore(table, losses, fail=()):
    """Run the planner to its end: each round's edges 'finish' with ``_saddle``; returns the rounds of pairs."""
    from lowloss.jobs.autoneb import AutoNEBStageKind

    kind, view, rounds = AutoNEBStageKind(), FakeView(losses), []
    for _ in range(100):
        plan = kind.plan(table, None, view)
        new = view.absorb(plan)
        if new:
            rounds.append([tuple(view.own[u].params.pair) for u in new])
        for uid in new:
            pair = tuple(view.own[uid].params.pair)
            if pair in fail:
                view.gave_up.add(uid)
            else:
                view.results[uid] = {"saddle_train_loss": _saddle(pair, losses)}
        if not plan.open:
            return rounds, plan, view
    raise AssertionError("the planner never closed")


LOSSES = {0: 0.30, 1: 0.10, 2: 0.20, 3: 0.05, 4: 0.40, 5: 0.25}


def test_star_first_all_at_once_then_refinement_rounds_of_parallel_edges():
    rounds, plan, view = _explore(_stage(budget=9, parallel_edges=2, similar=None), LOSSES)
    best = 3  # the lowest loss
    assert sorted(rounds[0]) == sorted(tuple(sorted((best, s))) for s in LOSSES if s != best)  # the whole star
    assert all(len(r) <= 2 for r in rounds[1:]) and sum(map(len, rounds)) == 9
    assert "budget" in plan.note and "9 edges done" in plan.note
    pairs = [p for r in rounds for p in r]
    assert len(set(pairs)) == len(pairs)  # never an edge twice


def test_plan_is_a_function_of_the_committed_results_and_ids_of_the_pair_and_settings():
    from lowloss.jobs.autoneb import AutoNEBStageKind

    table = _stage(budget=9, parallel_edges=2, similar=None)
    rounds, _, view = _explore(table, LOSSES)
    # a restarted coordinator: a fresh view over the same results plans the same units, each once
    fresh = FakeView(LOSSES)
    fresh.results.update({u: r for u, r in view.results.items() if not u.startswith("mode")})
    kind = AutoNEBStageKind()
    for _ in range(20):
        plan = kind.plan(table, None, fresh)
        if not fresh.absorb(plan):
            break
    assert set(fresh.own) == set(view.own)
    # the ids do not depend on budget, parallel_edges nor similar
    other = _stage(budget=3, parallel_edges=7, similar=0.5)
    first = kind.plan(other, None, FakeView(LOSSES))
    assert {d.params.canonical()["pair"][0] for d in first.drafts} <= set(LOSSES)
    again = FakeView(LOSSES)
    assert set(again.absorb(first)) <= set(view.own)


def test_exploring_every_pair_gives_the_tree_of_all_edges_and_stops_when_all_are_known():
    import numpy as np
    from scipy.sparse.csgraph import minimum_spanning_tree as scipy_mst

    from lowloss.workers.autoneb.exploration import minimum_spanning_tree

    rounds, plan, _ = _explore(_stage(parallel_edges=3, similar=None), LOSSES)
    pairs = {p for r in rounds for p in r}
    assert len(pairs) == 15 and "all pairs known" in plan.note
    weights = {p: _saddle(p, LOSSES) for p in pairs}
    ours = sum(w for _, _, w in minimum_spanning_tree(list(LOSSES), weights))
    dense = np.zeros((6, 6))
    for (a, b), w in weights.items():
        dense[a, b] = w
    assert ours == pytest.approx(scipy_mst(dense).sum())


def test_similar_saddles_close_the_exploration_after_the_star():
    from lowloss.jobs.autoneb import AutoNEBStageKind

    kind, view = AutoNEBStageKind(), FakeView(LOSSES)
    table = _stage(similar=0.5)
    view.absorb(kind.plan(table, None, view))
    for uid in view.own:
        view.results[uid] = {"saddle_train_loss": 1.0 + 0.01 * len(view.results)}  # all within 10 %
    plan = kind.plan(table, None, view)
    assert not plan.open and "similar saddles" in plan.note and len(view.absorb(plan)) == 0


def test_a_failed_edge_is_not_retried_and_the_exploration_goes_around_it():
    rounds, plan, view = _explore(_stage(budget=8, parallel_edges=2, similar=None), LOSSES, fail={(1, 3)})
    pairs = [p for r in rounds for p in r]
    assert pairs.count((1, 3)) == 1 and not plan.open and "1 failed" in plan.note
    assert any(1 in p and p != (1, 3) for p in pairs[5:])  # minimum 1 is reached by another edge


def test_static_pair_strategies_plan_everything_at_once():
    from lowloss.jobs.autoneb import AutoNEBStageKind

    plan = AutoNEBStageKind().plan(_stage(explore=[[0, 1], [2, 5]]), None, FakeView(LOSSES))
    assert [d.params.pair for d in plan.drafts] == [(0, 1), (2, 5)] and not plan.open
    plan = AutoNEBStageKind().plan(_stage(explore="consecutive", budget=3), None, FakeView(LOSSES))
    assert [d.params.pair for d in plan.drafts] == [(0, 1), (1, 2), (2, 3)]


def test_schedules_resolve_and_bound_the_pivots():
    from lowloss.jobs.autoneb.params import AutoNEBStage, max_pivots

    standard = AutoNEBStage.model_validate({"from": "m"}).resolved_cycles()
    assert len(standard) == 14 and sum(c.steps for c in standard) == 16_000 and max_pivots(standard) == 31
    fast = AutoNEBStage.model_validate({"from": "m", "schedule": "fast", "cycle_steps": 7}).resolved_cycles()
    assert len(fast) == 7 and {c.steps for c in fast} == {7} and max_pivots(fast) == 21
    assert AutoNEBStage.model_validate({"from": "m"}).insert_threshold == 0.2  # the paper's, not the code's 0.1


def test_spec_errors_name_the_field(write_spec):
    bad_first = spec_text(
        stages="""
        [[stages]]
        name = "modes"
        kind = "train"

        [[stages]]
        name = "mst"
        kind = "autoneb"
        from = "modes"
        [[stages.cycles]]
        steps = 10
        lr = 0.1
        insert = "highest"
    """
    )
    out = run_cli("validate", write_spec(bad_first))
    assert out.returncode == 2 and "cycles" in out.stderr and "insert = 'equal'" in out.stderr
    bad_pair = spec_text(
        stages="""
        [[stages]]
        name = "modes"
        kind = "train"

        [[stages]]
        name = "mst"
        kind = "autoneb"
        from = "modes"
        explore = [[0, 7]]
    """
    )
    out = run_cli("validate", write_spec(bad_pair, "b.toml"))
    assert out.returncode == 2 and "explore" in out.stderr and "seed 7" in out.stderr


def test_autoneb_recipes_validate_and_plan(tmp_path, capsys):
    from datafiles import write_cifar10

    from lowloss.jobs import recipes
    from lowloss.orchestrator.cli import main

    root = write_cifar10(tmp_path / "cifar10")
    names = [n for n in recipes() if n.startswith("autoneb-")]
    assert {"autoneb-digits", "autoneb-resnet20-cifar10", "autoneb-resnet20-cifar10-fast"} <= set(names)
    for name in names:
        extra = ["--data-root", str(root)] if "cifar10" in name else []
        assert main(["validate", name, *extra]) == 0, f"{name}: {capsys.readouterr().err}"
        assert main(["plan", name]) == 0, f"{name}: {capsys.readouterr().err}"
        assert "would run" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------ real digits modes

EXPLORE = """
    [[stages]]
    name = "modes"
    kind = "train"

    [[stages]]
    name = "lmc"
    kind = "interpolate"
    from = "modes"
    pairs = "all"
    points = 11

    [[stages]]
    name = "mst"
    kind = "autoneb"
    from = "modes"
    explore = "mst"
    parallel_edges = 2
    similar = {similar}
    batch_size = 64
    bn = "UpBN"
    segment_steps = 6       # segments end mid-cycle too: a checkpoint then holds the running cycle's momentum

    [[stages.cycles]]
    steps = 12
    lr = 0.1
    insert = "equal"
    insert_count = 2
    points_between = 2

    [[stages.cycles]]
    steps = 8
    lr = 0.01
    insert = "highest"
    insert_count = 1
    points_between = 2

    [[stages]]
    name = "compare"
    kind = "compare"        # waits for the exploration to close, then takes the pairs both stages computed
    from = ["lmc", "mst"]
    pairs = "common"
    bn = "UpBN"
"""


def _spec(similar="0.0") -> str:
    return spec_text(
        name="anb",
        seeds="[0, 1, 2, 3]",
        model="small_cnn",
        epochs=5,
        segment_steps=20,
        stages=EXPLORE.replace("{similar}", similar),
    )


def _edges(store: Path) -> dict[str, Path]:
    return {p.name[5:]: p for p in (store / "units").glob("kind=autoneb_edge/unit=*")}


@pytest.fixture(scope="module")
def explored(tmp_path_factory):
    """An uninterrupted exploration of every pair of four digits modes (similar = 0: never stops early)."""
    tmp = tmp_path_factory.mktemp("anb")
    spec = tmp / "spec.toml"
    spec.write_text(_spec())
    store = tmp / "store"
    run_cli("run", spec, "--store", store, check=True)
    return spec, store


def _results(store: Path, kind: str) -> list[dict]:
    return [json.loads((p / "result.json").read_text()) for p in (store / "units").glob(f"kind={kind}/unit=*")]


@pytest.mark.slow
def test_digits_saddles_below_the_linear_barrier_and_minimax_bounds(explored):
    from lowloss.workers.autoneb.exploration import minimax_bounds, minimum_spanning_tree

    _, store = explored
    edges = {tuple(r["pair"]): r for r in _results(store, "autoneb_edge")}
    lines = {tuple(sorted(r["pair"])): r for r in _results(store, "interpolate")}
    assert len(edges) == 6  # every pair of four minima
    for pair, edge in edges.items():
        line = lines[tuple(sorted(pair))]
        assert edge["saddle_train_loss"] < line["max_train_loss"], (pair, edge["saddle_train_loss"], line)
        assert edge["barrier_train_loss"] < line["barrier_train_loss"]
        assert edge["below_linear"] and edge["length_ratio"] >= 1.0
    minima = [0, 1, 2, 3]
    weights = {p: e["saddle_train_loss"] for p, e in edges.items()}
    bounds = minimax_bounds(minima, weights)
    tree = {(a, b) for a, b, _ in minimum_spanning_tree(minima, weights)}
    for pair, w in weights.items():
        key = tuple(sorted(pair))
        assert bounds[key] <= w
        if pair in tree:
            assert bounds[key] == w
    import numpy as np
    from scipy.sparse.csgraph import minimum_spanning_tree as scipy_mst

    dense = np.zeros((4, 4))
    for (a, b), w in weights.items():
        dense[min(a, b), max(a, b)] = w
    scipy_tree = {tuple(int(v) for v in e) for e in zip(*scipy_mst(dense).nonzero())}
    assert {tuple(sorted(e)) for e in tree} == scipy_tree  # every pair computed: the tree is SciPy's over all edges
    # the compare stage waited for the exploration to close, then evaluated both methods on every pair both computed
    compared = {(tuple(sorted(r["pair"])), r["method"]): r for r in _results(store, "path_eval")}
    assert set(compared) == {(pair, m) for pair in lines for m in ("linear", "autoneb")}
    for (pair, method), r in compared.items():
        assert r["bn"] == "UpBN" and r["length_ratio"] >= 1 - 1e-9, (pair, method, r)


@pytest.mark.slow
def test_report_draws_the_edge_figures(explored, tmp_path):
    _, store = explored
    out = run_cli("report", store, "--out", tmp_path / "R", check=True)
    figures = {p.name for p in (tmp_path / "R" / "figures").glob("*.png")}
    for name in (
        "mst-path.png",
        "mst-tree.png",
        "mst-disconnectivity.png",
        "mst-minimax.png",
        "mst-cycles.png",
        "mst-versus-linear.png",
    ):
        assert name in figures, (name, sorted(figures), out.stdout[-2000:])


@pytest.mark.slow
def test_coordinator_killed_mid_exploration_resumes_without_computing_an_edge_twice(explored, tmp_path):
    spec, reference = explored
    store = tmp_path / "store"
    proc = start_cli("run", spec, "--store", store)

    def mid_exploration():
        edges = _edges(store)
        done = [e for e in edges.values() if (e / "COMMIT.json").exists()]
        running = [
            e for e in edges.values() if not (e / "COMMIT.json").exists() and list((e / "segments").glob("0*.json"))
        ]
        return done and running

    try:
        wait_for(mid_exploration, timeout=400, interval=0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        proc.kill()
    time.sleep(0.5)  # the workers die with the coordinator
    for edge in _edges(store).values():
        for rec in (edge / "attempts").glob("0*.json"):
            pid = json.loads(rec.read_text()).get("pid")
            if pid:
                wait_for(lambda pid=pid: not Path(f"/proc/{pid}").exists(), timeout=20)
    cut = {
        uid: len(list((e / "segments").glob("0*.json")))
        for uid, e in _edges(store).items()
        if not (e / "COMMIT.json").exists()
    }
    assert any(cut.values()), "no edge was cut mid-way; kill later"
    checkpointed = {uid for uid in cut if (_edges(store)[uid] / "checkpoint" / "latest.json").exists()}
    assert run_cli("resume", store).returncode == 0
    assert digests(store) == digests(reference)
    assert set(_edges(store)) == set(_edges(reference))  # no edge planned that the uninterrupted run did not plan
    for uid, edge in _edges(store).items():
        records = [json.loads(p.read_text()) for p in sorted((edge / "attempts").glob("0*.json"))]
        states = [r["state"] for r in records]
        # committed once, by its last attempt: nothing ran after the commit (a kill between the commit and the
        # attempt's closing record is mended by the resume, which writes that record as done)
        assert json.loads((edge / "COMMIT.json").read_text())["attempt"] == records[-1]["attempt"], (uid, states)
        assert "done" not in states[:-1], (uid, states)
        assert len(states) == 1 or uid in cut, (uid, states)  # only an edge the kill cut short ran again
        if uid in checkpointed:  # it had committed segments and their checkpoint: the next attempt resumed them
            logs = "".join(p.read_text() for p in sorted((edge / "attempts").glob("*.log")))
            assert "resumed at segment" in logs, (uid, states)
