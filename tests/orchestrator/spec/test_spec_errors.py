"""Bad input: one clear line naming the field, the bad value and what is allowed; exit code 2; no traceback;
nothing in the store touched. Table-driven over every class of bad input."""

from __future__ import annotations

import pytest
from conftest import run_cli, spec_text

from lowloss.orchestrator.cli import main

STAGES_WITH = """
    [[stages]]
    name = "modes"
    kind = "train"

    [[stages]]
    name = "lmc"
    kind = "interpolate"
    from = "modes"
    {extra}
"""

CASES = [
    # (id, spec text, extra CLI args, substrings the message must hold)
    ("typo-key", spec_text(train_extra="lrr = 0.1"), [], ["train.lrr", "unknown key", "did you mean 'lr'"]),
    ("typo-table", spec_text() + "\n[trian]\nlr = 1\n", [], ["trian", "unknown key", "[train]"]),
    ("wrong-type", spec_text(epochs='"ten"'), [], ["train.epochs", "'ten'", "integer"]),
    (
        "out-of-range",
        spec_text(train_extra="lr = -1.0").replace("lr = 0.05\n", ""),
        [],
        ["train.lr", "-1.0", "greater than 0"],
    ),
    ("seeds-twice", spec_text(seeds="[0, 1, 1]"), [], ["study.seeds", "[0, 1, 1]", "given twice"]),
    (
        "bad-choice",
        spec_text(train_extra='schedule = "onecylce"'),
        [],
        ["train.schedule", "onecylce", "did you mean 'onecycle'"],
    ),
    ("unknown-model", spec_text(model="resnet"), [], ["model.name", "'resnet'", "small_cnn"]),
    (
        "unknown-kind",
        spec_text(stages='[[stages]]\nname = "m"\nkind = "trian"\n'),
        [],
        ["stages[0].kind", "'trian'", "did you mean 'train'"],
    ),
    (
        "stage-key-typo",
        spec_text(stages=STAGES_WITH.format(extra="point = 5")),
        [],
        ["stages[1].point", "did you mean 'points'"],
    ),
    (
        "bad-from",
        spec_text(stages=STAGES_WITH.format(extra="").replace('from = "modes"', 'from = "mods"')),
        [],
        ["stages[1].from", "'mods'", "earlier stage"],
    ),
    (
        "bad-pairs",
        spec_text(stages=STAGES_WITH.format(extra='pairs = "everything"')),
        [],
        ["stages[1].pairs", "everything"],
    ),
    (
        "too-many-random-pairs",
        spec_text(stages=STAGES_WITH.format(extra="pairs = {random = 5, seed = 1}")),
        [],
        ["stages[1].pairs", "only 1"],
    ),
    (
        "empty-pairs",
        spec_text(stages=STAGES_WITH.format(extra="pairs = []")),
        [],
        ["stages[1].pairs = []: 'consecutive', 'all', 'to_best'", "an empty list makes no pairs"],
    ),
    (
        "pair-unknown-seed",
        spec_text(stages=STAGES_WITH.format(extra="pairs = [[0, 7]]")),
        [],
        ["stages[1].pairs", "seed 7"],
    ),
    ("missing-name", spec_text().replace('name = "t"\n', ""), [], ["study.name", "required"]),
    ("bad-toml", spec_text() + "\n[train\n", [], ["TOML", "not valid TOML"]),
    (
        "missing-data-root",
        spec_text().replace('dataset = "digits"', 'dataset = "mnist"'),
        [],
        ["data.root", "needs a data root", "download=True"],
    ),
    (
        "absent-data-root",
        spec_text().replace('dataset = "digits"', 'dataset = "cifar10"'),
        ["--data-root", "/nonexistent/cifar"],
        ["--data-root", "does not exist"],
    ),
    (
        "absent-data-root-of-embedded-data",
        spec_text(),
        ["--data-root", "/nonexistent/digits"],
        [
            "error: --data-root = '/nonexistent/digits': does not exist",
            "the folder holding the dataset",
            "digits and mnist5k",
        ],
    ),
    (
        "absent-data-root-in-spec",
        spec_text(data_extra='root = "/nonexistent/digits"'),
        [],
        ["data.root = '/nonexistent/digits': does not exist", "leave it out for the embedded digits"],
    ),
    ("bad-jobs", spec_text(), ["--jobs", "0"], ["--jobs", "0", "≥ 1"]),
    ("bad-executor", spec_text(), ["--executor", "pbs"], ["--executor", "invalid choice", "'pbs'"]),
    ("bad-retries-type", spec_text(run_extra="").replace("retries = 1", "retries = 1.5"), [], ["run.retries", "1.5"]),
    (
        "bool-for-number",
        spec_text(train_extra="weight_decay = true"),
        [],
        ["weight_decay = true", "a number is needed"],
    ),
    ("string-for-flag", spec_text(train_extra='augment = "yes"'), [], ["augment = 'yes'", "true or false"]),
    (
        "model-does-not-fit-data",
        spec_text(model="lenet5"),
        [],
        ["model.name", "'lenet5'", "does not fit digits inputs"],
    ),
    (
        "negative-flag",
        spec_text(),
        ["--checkpoint-seconds", "-5"],
        ["--checkpoint-seconds", "-5", "greater than or equal to 0"],
    ),
    ("zero-pack", spec_text(), ["--units-per-job", "0"], ["--units-per-job", "0"]),
    # issue 10 item 9: no string→number and no bool→number conversion, at any depth of any section or stage table
    (
        "string-for-int",
        spec_text(segment_steps='"100"'),
        [],
        ["train.segment_steps = '100'", "an integer is needed, not a string"],
    ),
    (
        "string-in-seed-list",
        spec_text(seeds='[0, "1"]'),
        [],
        ["study.seeds = [0, '1']", "seeds are integers ('1' is not)"],
    ),
    (
        "bool-in-seed-list",
        spec_text(seeds="[false]"),
        [],
        ["study.seeds = [False]", "seeds are integers (False is not)"],
    ),
    (
        "nan",
        spec_text(train_extra="weight_decay = nan"),
        [],
        ["train.weight_decay = nan", "finite number"],
    ),
    (
        "negative-seed",
        spec_text(seeds="[-1, 1]"),
        [],
        ["study.seeds = [-1, 1]", "seeds are integers ≥ 0 (-1 is not)"],
    ),
    (
        "negative-seed-range",
        spec_text(seeds="{start = -3, count = 3}"),
        [],
        ["study.seeds.start = -3", "seeds are integers ≥ 0"],
    ),
    (
        "seed-range-past-its-bound",
        spec_text(seeds="{start = 0, count = 300000}"),
        [],
        ["study.seeds.count = 300000: at most 100,000 seeds in one range (a list may name more)"],
    ),
    (
        "seed-twice-among-many",  # named at once, not after 10¹⁰ list scans
        spec_text(seeds=str([*range(100_000), 7])),
        [],
        ["study.seeds = [0, 1, 2,", "each seed once; [7] given twice"],
    ),
    (
        "decimal-for-integer",
        spec_text(stages=STAGES_WITH.format(extra="points = 5.0")),
        [],
        ["stages[1].points = 5.0", "an integer is needed, not a decimal number (write 5)"],
    ),
    (
        "string-in-seed-range",
        spec_text(seeds='{start = 0, count = "3"}'),
        [],
        ["study.seeds.count = '3'", "an integer; a list of seeds such as [0, 1, 2], or a table"],
    ),
    (
        "string-in-float-pair",
        spec_text(train_extra='betas = [0.9, "0.99"]'),
        [],
        ["train.betas", "'0.99': a number is needed"],
    ),
    (
        "string-for-float",
        spec_text(run_extra='checkpoint_seconds = "5"').replace("checkpoint_seconds = 0\n", ""),
        [],
        ["run.checkpoint_seconds = '5'", "a number is needed, not a string"],
    ),
    (
        "string-in-pair-list",
        spec_text(stages=STAGES_WITH.format(extra='pairs = [[0, "1"]]')),
        [],
        ["stages[1].pairs = [[0, '1']]", "'1': an integer is needed"],
    ),
    (
        "bool-in-pair-table",
        spec_text(stages=STAGES_WITH.format(extra="pairs = {random = true}")),
        [],
        ["stages[1].pairs.random = true", "an integer is needed, not true/false"],
    ),
    (
        "string-for-stage-int",
        spec_text(stages=STAGES_WITH.format(extra='points = "5"')),
        [],
        ["stages[1].points = '5'", "an integer is needed, not a string"],
    ),
    # issue 14 item 6: the [sweep] table
    (
        "sweep-unknown-train-field",
        spec_text() + "[sweep]\ntrain.lrr = [0.1, 0.2]\n",
        [],
        ["sweep.train.lrr", "did you mean 'lr'"],
    ),
    ("sweep-not-a-list", spec_text() + "[sweep]\ntrain.lr = 0.1\n", [], ["sweep.train.lr = 0.1", "a non-empty list"]),
    ("sweep-empty-list", spec_text() + "[sweep]\ntrain.lr = []\n", [], ["sweep.train.lr = []", "a non-empty list"]),
    ("sweep-seeds", spec_text() + "[sweep]\nstudy.seeds = [[0], [1]]\n", [], ["sweep.study.seeds", "seeds are the"]),
    (
        "sweep-unknown-stage",
        spec_text() + "[sweep]\nstages.lcm.points = [5, 7]\n",
        [],
        ["sweep.stages.lcm.points", "no stage named 'lcm'", "did you mean 'lmc'"],
    ),
    (
        "sweep-stage-kind",
        spec_text() + '[sweep]\nstages.lmc.kind = ["interpolate"]\n',
        [],
        ["sweep.stages.lmc.kind", "not a field a sweep can vary"],
    ),
    (
        "sweep-bad-value",
        spec_text() + "[sweep]\ntrain.lr = [0.1, -1.0]\n",
        [],
        ["sweep.train.lr = -1.0", "out of range"],
    ),
    (
        "sweep-bad-mode",
        spec_text() + '[sweep]\nmode = "grdi"\ntrain.lr = [0.1]\n',
        [],
        ["sweep.mode = 'grdi'", "did you mean 'grid'"],
    ),
    (
        "sweep-zip-lengths",
        spec_text() + '[sweep]\nmode = "zip"\ntrain.lr = [0.1, 0.2]\nstages.lmc.points = [5]\n',
        [],
        ["sweep", "one length"],
    ),
    (
        "sweep-repeated-value",
        spec_text() + "[sweep]\ntrain.lr = [0.1, 0.1]\n",
        [],
        ["sweep.train.lr", "each value once"],
    ),
    # [train] fields the chosen schedule or optimizer never reads (part of the unit ids: the same work, other ids)
    (
        "unread-max-lr",
        spec_text(train_extra="max_lr = 0.2"),
        [],
        ["train.max_lr = 0.2: only schedule = 'onecycle' uses it (schedule = 'constant')", "remove it or choose"],
    ),
    (
        "unread-lr-onecycle",
        spec_text(train_extra='schedule = "onecycle"'),
        [],
        ["train.lr = 0.05: only schedule = 'constant', 'cosine' or 'step' uses it (schedule = 'onecycle'"],
    ),
    (
        "unread-decay-steps",
        spec_text(train_extra='schedule = "cosine"\ndecay_steps = [100]'),
        [],
        ["train.decay_steps = [100]: only schedule = 'step' uses it (schedule = 'cosine')"],
    ),
    (
        "unread-min-lr",
        spec_text(train_extra='schedule = "step"\ndecay_steps = [100]\nmin_lr = 0.0'),
        [],
        ["train.min_lr = 0.0: only schedule = 'cosine' uses it (schedule = 'step')"],
    ),
    (
        "unread-warmup-lr",
        spec_text(train_extra='schedule = "cosine"\nwarmup_lr = 0.001'),
        [],
        ["train.warmup_lr = 0.001", "warmup_epochs = 0.0", "set warmup_epochs > 0"],
    ),
    (
        "unread-momentum-adamw",
        spec_text(train_extra='optimizer = "adamw"').replace('optimizer = "sgd"\n', ""),
        [],
        ["train.momentum = 0.9: only optimizer = 'sgd' uses it (optimizer = 'adamw'); remove it or choose that"],
    ),
    (
        "unread-betas-sgd",
        spec_text(train_extra="betas = [0.9, 0.99]"),
        [],
        ["train.betas = [0.9, 0.99]: only optimizer = 'adam' or 'adamw' uses it (optimizer = 'sgd')"],
    ),
    (
        "unread-swept",
        spec_text() + "[sweep]\ntrain.max_lr = [0.1, 0.2]\n",
        [],
        ["sweep.train.max_lr = 0.2: only schedule = 'onecycle' uses it (schedule = 'constant')"],
    ),
    (
        "unread-swept-beside-its-schedule",
        spec_text() + '[sweep]\ntrain.schedule = ["constant", "onecycle"]\ntrain.max_lr = [0.1, 0.2]\n',
        [],
        ["sweep.train.max_lr = 0.2", "(with sweep train.schedule=constant)", 'mode = "zip" with the default 0.1'],
    ),
    (
        "unread-in-every-combination",
        spec_text(train_extra="pct_start = 0.4")
        + '[sweep]\ntrain.schedule = ["constant", "step"]\n'
        + "train.decay_steps = [[100]]\n",
        [],
        ["train.pct_start = 0.4: only schedule = 'onecycle'", "(with sweep train.schedule=constant)"],
    ),
    (
        "unit-kind-is-no-stage-kind",
        spec_text(stages='[[stages]]\nname = "m"\nkind = "m2m_phase"\n'),
        [],
        ["stages[0].kind", "m2m_phase", "m2m"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_touches_nothing(case, tmp_path, capsys):
    _, text, extra, needles = case
    spec = tmp_path / "spec.toml"
    spec.write_text(text)
    store = tmp_path / "store"
    rc = main(["run", str(spec), "--store", str(store), *extra])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    assert not store.exists(), "a bad input must not create the store"


def test_train_fields_read_by_some_combination_of_a_sweep_are_accepted():
    """A [train] field set while the sweep varies what reads it, when some combination reads it; a swept value at the
    field's default where it is not read (a zip placeholder): the ids are those of the field unset."""
    from lowloss.orchestrator.engine.graph import plan_study
    from lowloss.orchestrator.spec import parse_spec

    no_lr = spec_text().replace("lr = 0.05\n", "")
    study = parse_spec(no_lr.replace("momentum = 0.9", "momentum = 0.9\nmax_lr = 0.2") + SCHEDULES)
    assert [v.context.train.max_lr for v in study.variants] == [0.2, 0.2]
    zipped = parse_spec(no_lr + SCHEDULES + "mode = 'zip'\ntrain.max_lr = [0.1, 0.2]\n")
    assert [(v.context.train.schedule, v.context.train.max_lr) for v in zipped.variants] == [
        ("constant", 0.1),
        ("onecycle", 0.2),
    ]
    constant = plan_study(parse_spec(no_lr))
    swept = plan_study(zipped)
    assert set(constant.units) < set(swept.units)  # the constant combination's units are the plain spec's


SCHEDULES = '[sweep]\ntrain.schedule = ["constant", "onecycle"]\n'


def test_the_embedded_default_study_keeps_its_unit_ids():
    """Refusing unread [train] fields changes no id: the planned units of digits-default (10: 4 modes, 6 pairs) hash
    as they did before (main at abff9d7), so its stores are re-used whole."""
    import hashlib

    from lowloss.jobs import recipes
    from lowloss.orchestrator.engine.graph import plan_study
    from lowloss.orchestrator.spec import load_spec

    ids = sorted(plan_study(load_spec(recipes()["digits-default"])).units)
    assert len(ids) == 10
    assert hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16] == "3ea510adb53dc49a"


def test_a_stores_own_spec_with_an_unread_train_field_still_resumes(tmp_path, capsys):
    """A store whose spec was written before unread [train] fields were refused: its units exist under those ids, so
    `lowloss resume` reads the stored spec as it is; the same text given to `run` is refused."""
    store = tmp_path / "store"
    (tmp_path / "a.toml").write_text(spec_text(stages='[[stages]]\nname = "c"\nkind = "crashy"\nfail_attempts = 0\n'))
    assert main(["run", str(tmp_path / "a.toml"), "--store", str(store)]) == 0
    old = (store / "spec.toml").read_text().replace("momentum = 0.9", "momentum = 0.9\nmax_lr = 0.2")
    (store / "spec.toml").write_text(old)
    (tmp_path / "old.toml").write_text(old)
    capsys.readouterr()
    assert main(["resume", str(store)]) == 0
    assert main(["run", str(tmp_path / "old.toml"), "--store", str(store)]) == 2
    assert "train.max_lr = 0.2: only schedule = 'onecycle' uses it" in capsys.readouterr().err


def test_store_of_another_study_is_refused_untouched(tmp_path, capsys):
    store = tmp_path / "store"
    (tmp_path / "a.toml").write_text(
        spec_text(name="alpha", stages='[[stages]]\nname = "c"\nkind = "crashy"\nfail_attempts = 0\n')
    )
    assert main(["run", str(tmp_path / "a.toml"), "--store", str(store)]) == 0
    before = sorted((p.relative_to(store).as_posix(), p.stat().st_mtime_ns) for p in store.rglob("*"))
    (tmp_path / "b.toml").write_text(spec_text(name="beta"))
    capsys.readouterr()
    assert main(["run", str(tmp_path / "b.toml"), "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert "belongs to study 'alpha'" in err and "beta" in err and "Traceback" not in err
    after = sorted((p.relative_to(store).as_posix(), p.stat().st_mtime_ns) for p in store.rglob("*"))
    assert before == after


def test_store_path_through_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "s.toml").write_text(spec_text())
    for store in (tmp_path / "afile", tmp_path / "afile" / "sub"):
        assert main(["run", str(tmp_path / "s.toml"), "--store", str(store)]) == 2
        err = capsys.readouterr().err
        assert "is a file, not a directory" in err and "Traceback" not in err


def test_non_store_directory_is_refused(tmp_path, capsys):
    store = tmp_path / "notastore"
    store.mkdir()
    (store / "precious.txt").write_text("keep me")
    (tmp_path / "s.toml").write_text(spec_text())
    assert main(["run", str(tmp_path / "s.toml"), "--store", str(store)]) == 2
    assert "not a lowloss store" in capsys.readouterr().err
    assert sorted(p.name for p in store.iterdir()) == ["precious.txt"]


def test_exit_code_2_at_process_level_and_validate_ok(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(spec_text(train_extra="momentun = 0.5"))
    proc = run_cli("validate", spec)
    assert proc.returncode == 2 and "train.momentun" in proc.stderr and "Traceback" not in proc.stderr
    spec.write_text(spec_text())
    proc = run_cli("validate", spec)
    assert proc.returncode == 0 and "valid" in proc.stdout


def test_missing_spec_file_and_unknown_recipe(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.toml")]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["validate", "digits-defualt"]) == 2
    assert "no such file and no such recipe (did you mean 'digits-default'?); recipes:" in capsys.readouterr().err
    assert main(["run", "llpf-lenet5-mnsit", "--store", str(tmp_path / "s")]) == 2
    assert "(did you mean 'llpf-lenet5-mnist'?)" in capsys.readouterr().err and not (tmp_path / "s").exists()
    assert main(["validate", str(tmp_path / "digits-defalt.toml")]) == 2
    assert "file not found; give the path of a .toml spec, or a recipe's name (did you mean 'digits-default'?)" in (
        capsys.readouterr().err
    )


def test_a_data_root_that_does_not_exist_is_refused_where_each_command_reads_it(tmp_path, capsys):
    """Issue 23: embedded data reads no root, and a typo'd one is never accepted silently (nor `plan`'s)."""
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text())
    absent = str(tmp_path / "data")
    for argv in (["validate", str(spec)], ["plan", str(spec)], ["submit", str(spec), "--store", absent, "--dry-run"]):
        assert main([*argv, "--data-root", absent]) == 2
        assert f"--data-root = '{absent}': does not exist" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["validate", str(spec), "--data-root", str(tmp_path / "file")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["validate", str(spec), "--data-root", str(tmp_path)]) == 0


def test_unknown_unit_in_show(tmp_path, capsys):
    store = tmp_path / "store"
    (tmp_path / "a.toml").write_text(spec_text(stages='[[stages]]\nname = "c"\nkind = "crashy"\nfail_attempts = 0\n'))
    assert main(["run", str(tmp_path / "a.toml"), "--store", str(store)]) == 0
    capsys.readouterr()
    assert main(["show", str(store), "ffffffff"]) == 2
    assert "no unit matching 'ffffffff'" in capsys.readouterr().err
    assert main(["status", str(tmp_path / "elsewhere")]) == 2
    assert "not a lowloss store" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content",
    [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b'[study]\nname = "t\xff"\n', b"\xff\xfe[\x00s\x00"],
    ids=["png", "latin1-byte", "utf16"],
)
def test_binary_spec_file_is_one_edge_error(tmp_path, content):
    """Issue 10 item 9: a binary / non-UTF-8 spec is exit 2 with one line naming the file, not a UnicodeDecodeError."""
    spec = tmp_path / "spec.toml"
    spec.write_bytes(content)
    for args in (["validate", spec], ["run", spec, "--store", tmp_path / "store"], ["plan", spec]):
        proc = run_cli(*args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and str(spec) in proc.stderr and "not UTF-8" in proc.stderr
    assert not (tmp_path / "store").exists()
