"""Planning, fast and in-process: unit ids, static and dynamic stages, a planner reading its own results, several
input stages, incremental re-planning, the expansion bound."""

from __future__ import annotations

import pytest
from conftest import spec_text

from lowloss.orchestrator.engine.graph import Planner, plan_study
from lowloss.orchestrator.spec import SpecError, parse_spec
from lowloss.orchestrator.store import unit_id

GROW = """
    [[stages]]
    name = "grow"
    kind = "grow"
    start = 1.0
    factor = 2.0
    target = 20.0
"""


def _study(stages: str, **kw):
    return parse_spec(spec_text(stages=stages, **kw))


def test_unit_ids_are_content_hashes_of_kind_version_params_inputs():
    a = unit_id("train", 1, {"seed": 0, "x": [1, 2]}, {})
    assert a == unit_id("train", 1, {"x": [1, 2], "seed": 0}, {})  # key order does not matter
    assert len(a) == 20 and all(c in "0123456789abcdef" for c in a)
    assert a != unit_id("train", 2, {"seed": 0, "x": [1, 2]}, {})
    assert a != unit_id("train", 1, {"seed": 1, "x": [1, 2]}, {})
    assert a != unit_id("train", 1, {"seed": 0, "x": [1, 2]}, {"a": "f" * 20})


def test_default_study_ids_are_those_of_the_released_format():
    """The embedded default's units keep the ids they had before core v2 (their params did not change)."""
    from lowloss.orchestrator.cli.common import resolve_spec

    planner = plan_study(resolve_spec(None))
    modes = {u.label: u.id for u in planner.stage_units("modes")}
    assert modes["seed=0"].startswith("51b7627076") and modes["seed=1"].startswith("e49c86a455")
    assert len(planner.stage_units("lmc")) == 6 and not planner.open_stages()


def test_static_stages_plan_once_and_close():
    planner = plan_study(_study(None))
    assert [len(planner.stage_units(s)) for s in ("modes", "lmc")] == [2, 1]
    assert planner.open_stages() == []
    calls = planner.plan_calls
    assert planner.finished(planner.stage_units("modes")[0].id) == []
    assert planner.plan_calls == calls  # closed stages are never planned again


def test_to_best_waits_for_every_mode_then_pairs_with_the_best():
    stages = """
        [[stages]]
        name = "modes"
        kind = "train"

        [[stages]]
        name = "lmc"
        kind = "interpolate"
        from = "modes"
        pairs = "to_best"
    """
    results: dict[str, dict] = {}
    planner = Planner(_study(stages, seeds="[0, 1, 2]"), results.get)
    planner.settle()
    modes = planner.stage_units("modes")
    assert planner.stage_units("lmc") == [] and planner.open_stages() == ["lmc"]
    for loss, unit in zip([0.3, 0.1], modes):
        results[unit.id] = {"final_train_loss": loss}
        assert planner.finished(unit.id) == []
    results[modes[2].id] = {"final_train_loss": 0.2}
    new = planner.finished(modes[2].id)
    assert sorted(u.params.pair for u in new) == [(1, 0), (1, 2)]  # seed 1 has the lowest loss
    assert planner.open_stages() == []


def test_a_planner_reads_its_own_results_round_by_round():
    results: dict[str, dict] = {}
    planner = Planner(_study(GROW), results.get)
    assert [u.params.round for u in planner.settle()] == [0]
    rounds = []
    while planner.open_stages():
        last = planner.stage_units("grow")[-1]
        results[last.id] = {"round": last.params.round, "value": last.params.value}
        rounds.append([u.params.value for u in planner.finished(last.id)])
    assert rounds == [[2.0], [4.0], [8.0], [16.0], [32.0], []]  # closes once a result reaches 20
    assert planner.stages["grow"].note.startswith("reached 32.0")


def test_a_restarted_planner_reaches_the_same_units_from_the_committed_results():
    results: dict[str, dict] = {}
    first = Planner(_study(GROW), results.get)
    first.settle()
    for _ in range(3):
        last = first.stage_units("grow")[-1]
        results[last.id] = {"round": last.params.round, "value": last.params.value}
        first.finished(last.id)
    again = Planner(_study(GROW), results.get)
    again.settle()  # one call: plans round by round over what is committed, to a fixed point
    assert [u.id for u in again.stage_units("grow")] == [u.id for u in first.stage_units("grow")]
    assert again.open_stages() == ["grow"]


def test_a_planner_that_never_closes_is_shown_open_with_its_note():
    planner = plan_study(_study(GROW))
    doc = planner.document()
    (stage,) = doc.stages
    assert stage.open is True and stage.note == "round 0 planned" and stage.kind == "grow"
    assert stage.units[0].kind == "grow"


def test_several_input_stages_and_named_outputs_as_inputs():
    stages = """
        [[stages]]
        name = "a"
        kind = "emit"
        seeds = [0, 1]

        [[stages]]
        name = "b"
        kind = "emit"
        seeds = [5, 6]

        [[stages]]
        name = "both"
        kind = "consume"
        from = ["a", "b"]
    """
    planner = plan_study(_study(stages))
    (combo,) = planner.stage_units("both")
    a0, b6 = planner.stage_units("a")[0], planner.stage_units("b")[-1]
    assert combo.inputs == {"dirs": f"{a0.id}:directions", "point": f"{b6.id}:point:2"}
    assert combo.input_ids == (a0.id, b6.id)


def test_from_must_name_earlier_stages_that_produce_what_the_stage_reads():
    bad = """
        [[stages]]
        name = "c"
        kind = "crashy"

        [[stages]]
        name = "lmc"
        kind = "interpolate"
        from = "c"
    """
    with pytest.raises(SpecError) as err:
        _study(bad)
    assert "stages[1].from = 'c'" in str(err.value) and "'final'" in str(err.value) and "'train'" in str(err.value)


def test_a_study_that_would_expand_past_the_bound_is_an_edge_error_before_anything_is_made():
    stages = """
        [[stages]]
        name = "modes"
        kind = "train"

        [[stages]]
        name = "lmc"
        kind = "interpolate"
        from = "modes"
        pairs = "all"
    """
    study = parse_spec(spec_text(stages=stages, seeds="{ start = 0, count = 100000 }"))
    with pytest.raises(SpecError) as err:
        plan_study(study)
    assert "4,999,950,000" in str(err.value) and "run.max_units" in str(err.value)
    small = parse_spec(spec_text(stages=stages, seeds="{ start = 0, count = 30 }", run_extra="max_units = 400"))
    with pytest.raises(SpecError, match="435"):
        plan_study(small)


# ---------------------------------------------------------------------- [sweep] (issue 14 item 6)


def _ids(planner, stage):
    return {u.label: u.id for u in planner.stage_units(stage)}


def test_sweep_grid_plans_every_combination_and_ids_change_only_where_it_does():
    swept = plan_study(parse_spec(spec_text() + "[sweep]\ntrain.lr = [0.01, 0.05]\nstages.lmc.points = [5, 7]\n"))
    modes, lmc = _ids(swept, "modes"), _ids(swept, "lmc")
    # the modes depend on train.lr only: 2 seeds x 2 rates, each shared by both point counts
    assert sorted(modes) == sorted(f"seed={s} (train.lr={lr})" for lr in ("0.01", "0.05") for s in (0, 1))
    assert len(lmc) == 4 and all("train.lr=" in label and "stages.lmc.points=" in label for label in lmc)
    # a combination's units are exactly the units of the plain spec with those values
    for lr in ("0.01", "0.05"):
        for points in (5, 7):
            text = spec_text().replace("lr = 0.05", f"lr = {lr}").replace("points = 5", f"points = {points}")
            plain = plan_study(parse_spec(text))
            plain_modes, plain_lmc = _ids(plain, "modes"), _ids(plain, "lmc")
            assert {modes[f"{k} (train.lr={lr})"] for k in plain_modes} == set(plain_modes.values())
            assert lmc[f"pair=0-1 (train.lr={lr}, stages.lmc.points={points})"] == plain_lmc["pair=0-1"]
    # each combination's interpolation reads that combination's modes
    for unit in swept.stage_units("lmc"):
        lr = unit.label.split("train.lr=")[1].split(",")[0]
        assert {swept.units[i].label.split(" ")[1] for i in unit.input_ids} == {f"(train.lr={lr})"}


def test_sweep_zip_pairs_the_lists_and_a_stage_field_sweep_shares_the_modes():
    text = spec_text() + '[sweep]\nmode = "zip"\nstages.lmc.points = [5, 9]\nstages.lmc.reestimate_bn = [true, false]\n'
    study = parse_spec(text)
    assert [v.text for v in study.variants] == [
        "stages.lmc.points=5, stages.lmc.reestimate_bn=true",
        "stages.lmc.points=9, stages.lmc.reestimate_bn=false",
    ]
    assert study.sweep_by == ("points", "reestimate_bn")
    planner = plan_study(study)
    assert _ids(planner, "modes") == _ids(plan_study(parse_spec(spec_text())), "modes")  # unlabelled, unchanged
    assert len(planner.stage_units("lmc")) == 2


def test_without_sweep_there_is_one_variant_and_nothing_changes():
    study = parse_spec(spec_text())
    assert study.variants == () and study.sweep_fields == () and len(study.all_variants()) == 1


def test_plan_counts_a_unit_two_stages_share_once(tmp_path, capsys, monkeypatch):
    """`lowloss plan`: the same work planned by two stages (one id) runs once, so the total counts it once; each
    stage's line names the stage it shares units with. Two train stages of the same seeds are the same two modes;
    the embedded landscape-resnet32-cifar100 recipe's gaussian stage shares 5 directions with noupbn and 3
    centre/Hessian units with mined (478 stage rows, 470 units)."""
    from lowloss.orchestrator.cli import main

    monkeypatch.setenv("COLUMNS", "250")
    spec = tmp_path / "twice.toml"
    spec.write_text(
        spec_text(
            seeds="[0, 1]",
            stages='[[stages]]\nname = "modes"\nkind = "train"\n[[stages]]\nname = "again"\nkind = "train"\n',
        )
    )
    assert main(["plan", str(spec), "--units"]) == 0
    out = capsys.readouterr().out
    assert "2 unit(s) would run; 2 unit(s) planned by more than one stage are counted once." in out
    rows = {
        line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
        for line in out.splitlines()
        if line.startswith("│")
    }
    assert rows["modes"][2:] == ["2", "again (2)", "0", "2", "closed"]
    assert rows["again"][2:] == ["2", "modes (2)", "0", "2", "closed"]
    assert sum("(shared with again)" in line for line in out.splitlines()) == 2

    assert main(["plan", "landscape-resnet32-cifar100"]) == 0
    out = capsys.readouterr().out
    rows = {
        line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
        for line in out.splitlines()
        if line.startswith("│")
    }
    assert [rows[s][2] for s in ("modes", "gaussian", "noupbn", "mined")] == ["2", "441", "20", "15"]
    assert rows["gaussian"][3] == "mined (3), noupbn (5)" and rows["noupbn"][3] == "gaussian (5)"
    assert "470 unit(s) would run; 8 unit(s) planned by more than one stage are counted once." in out
    assert main(["plan", "digits-default"]) == 0
    out = capsys.readouterr().out
    assert "shared with" not in out and "10 unit(s) would run." in out


# ---------------------------------------------------------------------- the up-front count (issue 23 item 7)

TWO_LINES = """
    [[stages]]
    name = "modes"
    kind = "train"
    {modes}

    [[stages]]
    name = "lmc"
    kind = "interpolate"
    from = "modes"
    pairs = {pairs}
    points = 5

    [[stages]]
    name = "again"
    kind = "interpolate"
    from = "{again_from}"
    pairs = {again}
    points = {again_points}
"""


def _two_lines(pairs='"consecutive"', again='"consecutive"', again_points=5, modes="", again_from="modes", **kw):
    stages = TWO_LINES.format(pairs=pairs, again=again, again_points=again_points, modes=modes, again_from=again_from)
    return spec_text(stages=stages, **kw)


EXACT = {
    "default": spec_text(),
    "sweep-grid": spec_text() + "[sweep]\ntrain.lr = [0.01, 0.05]\nstages.lmc.points = [5, 7]\n",
    "sweep-zip": spec_text()
    + '[sweep]\nmode = "zip"\nstages.lmc.points = [5, 9]\nstages.lmc.reestimate_bn = [true, false]\n',
    "same-lines-twice": _two_lines(seeds="[0, 1, 2, 3]"),
    "other-points": _two_lines(again_points=7, seeds="[0, 1, 2, 3]"),
    "consecutive-within-all": _two_lines(again='"all"', seeds="[0, 1, 2, 3]"),
    "repeated-pairs": _two_lines(pairs="[[0, 1], [0, 1], [1, 0]]", again="[[1, 0]]", seeds="[0, 1, 2]"),
    "random-pairs": _two_lines(pairs="{random = 4, seed = 3}", again_points=7, seeds="[0, 1, 2, 3, 4]"),
    "vectorized": _two_lines(modes="vectorize = 2", seeds="[0, 1, 2, 3, 4]"),
    "to-best": _two_lines(pairs='"to_best"', seeds="[0, 1, 2]"),
    "swept-lines-of-swept-modes": _two_lines(seeds="[0, 1, 2]")
    + "[sweep]\ntrain.epochs = [2, 3]\nstages.again.points = [5, 9]\n",
}
SHORT = {  # the count falls short of the plan here (never over it)
    "grow-planner": spec_text(stages=GROW),
    "strategies-that-overlap": _two_lines(pairs="{random = 4, seed = 3}", seeds="[0, 1, 2, 3, 4]"),
    "overlapping-seeds": spec_text(
        stages="""
        [[stages]]
        name = "modes"
        kind = "train"
        seeds = [0, 1, 2]

        [[stages]]
        name = "more"
        kind = "train"
        seeds = [1, 2, 3]
    """
    ),
}


@pytest.mark.parametrize("name", sorted(EXACT) + sorted(SHORT))
def test_the_up_front_count_is_what_the_planner_makes_and_never_more(name):
    from lowloss.orchestrator.engine.graph import count_study

    study = parse_spec(EXACT.get(name) or SHORT[name])
    counted, planned = count_study(study), len(plan_study(study).units)
    assert counted == planned if name in EXACT else counted < planned, (counted, planned)


def test_the_up_front_count_of_every_recipe_is_what_the_planner_makes(monkeypatch):
    from lowloss import jobs
    from lowloss.orchestrator.engine.graph import count_study
    from lowloss.orchestrator.spec import load_spec

    monkeypatch.setattr(jobs, "model_input_problem", lambda name, data: None)  # fast: no model built to try its input
    for name, path in jobs.recipes().items():
        study = load_spec(path)
        assert count_study(study) == len(plan_study(study).units), name


def test_a_study_past_the_bound_is_refused_from_the_counts_before_anything_is_planned(monkeypatch):
    """At the bound a study plans; one unit past it is refused with the count, the limit and the fix, before the
    planner plans a stage; the count of 100 000 seeds allocates nothing per unit."""
    import tracemalloc

    from lowloss.orchestrator.engine.graph import count_study

    at_bound = parse_spec(spec_text(seeds="{ start = 0, count = 10 }", run_extra="max_units = 19"))
    assert len(plan_study(at_bound).units) == 19
    monkeypatch.setattr(Planner, "_plan_stage", lambda self, name: pytest.fail("the planner planned a stage"))
    past = parse_spec(spec_text(seeds="{ start = 0, count = 10 }", run_extra="max_units = 18"))
    with pytest.raises(SpecError) as err:
        plan_study(past)
    assert str(err.value) == (
        "<spec>: stages.lmc: with this stage the study would be 19 units (10 seeds in study.seeds), more than "
        "run.max_units = 18; lower the seed, pair or grid counts (or the sweep's), or raise run.max_units if the "
        "cluster can take it"
    )
    huge = parse_spec(_two_lines(again_points=7, seeds="{ start = 0, count = 100000 }"))
    tracemalloc.start()
    try:
        with pytest.raises(SpecError, match="stages.again: with this stage the study would be 299,998 units"):
            count_study(huge)
        assert tracemalloc.get_traced_memory()[1] < 1 << 20
    finally:
        tracemalloc.stop()
    swept = parse_spec(spec_text(seeds="{ start = 0, count = 100000 }") + "[sweep]\ntrain.lr = [0.01, 0.1, 1.0]\n")
    with pytest.raises(SpecError, match=r"stages.modes: .* 300,000 units \(100,000 seeds .*, 3 sweep combinations\)"):
        Planner(swept)
