"""Small things a newcomer trips on (issue 14 items 11, 12): both forms of ``study.seeds`` named in every seeds error,
``lowloss --version``, a help text for every option. Fast: no subprocess except the one ``--version``."""

from __future__ import annotations

import argparse
import os

import pytest
from conftest import run_cli, spec_text

from lowloss.orchestrator.spec import SpecError, parse_spec

BOTH_FORMS = "a list of seeds such as [0, 1, 2], or a table { start = S, count = N } with S ≥ 0, N ≥ 1"


@pytest.mark.parametrize(
    "seeds, field, value",
    [
        ("{start = 0, count = 0}", "study.seeds.count", "= 0"),
        ("{start = 0, count = -1}", "study.seeds.count", "= -1"),
        ("{start = 0, cont = 3}", "study.seeds.cont", ""),
        ("{start = 2}", "study.seeds.count", ""),
        ("{start = 1.5, count = 2}", "study.seeds.start", "= 1.5"),
        ('"0-3"', "study.seeds", "= '0-3'"),
        ('[0, "a"]', "study.seeds", "= [0, 'a']"),
    ],
)
def test_a_bad_seeds_value_names_the_field_and_both_forms(seeds, field, value):
    with pytest.raises(SpecError) as err:
        parse_spec(spec_text(seeds=seeds))
    text = str(err.value)
    assert f"{field}{(' ' + value) if value else ''}:" in text and BOTH_FORMS in text and "\n" not in text
    if "cont =" in seeds:
        assert "did you mean 'count'" in text


def test_both_seed_forms_parse():
    assert parse_spec(spec_text(seeds="{start = 3, count = 2}")).seeds == (3, 4)
    assert parse_spec(spec_text(seeds="[5, 1]")).seeds == (5, 1)


def test_every_option_and_argument_has_a_help_text():
    from lowloss.orchestrator.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    missing = []
    for name, command in sub.choices.items():
        assert command.description or sub._choices_actions, name
        for action in command._actions:
            if not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []
    assert all(c.help for c in sub._choices_actions)  # every command is described in `lowloss --help`


def test_version_prints_the_installed_version():
    from importlib.metadata import version

    proc = run_cli("--version", check=True)
    assert proc.stdout.strip() == f"lowloss {version('lowloss')}"


def test_report_seams_api_and_summary_import_neither_each_other_nor_the_drawing():
    """Issue 9 item 8: the store view (api), the statistics (summary) and the figures' data import no drawing code,
    and api and summary do not import each other."""
    import ast
    from pathlib import Path

    import lowloss.orchestrator.report as pkg

    def imports(module: str) -> set[str]:
        tree = ast.parse((Path(pkg.__file__).parent / f"{module}.py").read_text())
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                found.add(("." * node.level) + (node.module or ""))
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
        return found

    assert not {".summary", "lowloss.orchestrator.report.summary"} & imports("api")
    assert not {".api", "lowloss.orchestrator.report.api"} & imports("summary")
    for module in ("api", "summary", "figure_data"):
        assert not any(name.startswith(("matplotlib", ".figures")) for name in imports(module)), module


def test_submit_dry_run_takes_the_coordinator_job_from_the_profile(tmp_path, capsys):
    """Issue 14 item 13: time limit, partition (the coordinator's own over the defaults), memory and the setup lines."""
    import base64

    from lowloss.orchestrator.cli import main

    profile = tmp_path / "site.toml"
    profile.write_text(
        '[defaults]\npartition = "gpu"\naccount = "lab"\nsetup = ["module load cuda"]\n'
        '[coordinator]\npartition = "cpu"\ntime_min = 90\nsetup = ["source /opt/venv/bin/activate", "echo hi"]\n'
    )
    rc = main(["submit", "digits-default", "--store", str(tmp_path / "s"), "--profile", str(profile), "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0, out
    command = out.splitlines()[0].split()
    assert command[0] == "sbatch" and "--time=90" in command and "--partition=cpu" in command
    assert "--account=lab" in command and "--mem=2048M" in command
    export = next(c for c in command if c.startswith("--export="))
    setup = base64.b64decode(export.split("LOWLOSS_SETUP_B64=")[1]).decode()
    assert setup.splitlines() == ["source /opt/venv/bin/activate", "echo hi"]
    assert command[-4:] == ["digits-default", str(tmp_path / "s"), "--profile", str(profile)]
    assert not (tmp_path / "s").exists()  # a dry run touches nothing


def test_submit_with_a_bad_profile_is_an_edge_error(tmp_path, capsys):
    from lowloss.orchestrator.cli import main

    profile = tmp_path / "site.toml"
    profile.write_text("[coordinator]\ntime_mins = 90\n")
    rc = main(["submit", "digits-default", "--store", str(tmp_path / "s"), "--profile", str(profile), "--dry-run"])
    err = capsys.readouterr().err
    assert rc == 2 and "coordinator.time_mins" in err and "Traceback" not in err


def test_validate_refuses_what_run_would_refuse_and_counts_the_sweep(tmp_path, capsys):
    from lowloss.orchestrator.cli import main

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
    huge = tmp_path / "huge.toml"
    huge.write_text(spec_text(seeds="{start = 0, count = 1000}", stages=stages))
    assert main(["validate", str(huge)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"lowloss: error: {huge}: stages.lmc: pairs = 'all' would be 499,500 units") and (
        "run.max_units = 200,000" in err and "\n" not in err
    )
    swept = tmp_path / "swept.toml"
    swept.write_text(spec_text(seeds="[0, 1]", stages=stages) + "[sweep]\ntrain.lr = [0.01, 0.1]\n")
    assert main(["validate", str(swept)]) == 0
    assert "2 sweep combinations of train.lr" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, field",
    [
        (["report", "STORE", "--smooth", "5"], "--smooth"),
        (["report", "STORE", "--no-figures"], "--no-figures"),
        (["show", "STORE", "ab", "--last", "-1"], "--last = -1"),
    ],
)
def test_options_that_would_be_ignored_or_are_out_of_range_are_refused(tmp_path, capsys, argv, field):
    from lowloss.orchestrator.cli import main

    rc = main([str(tmp_path / "store") if a == "STORE" else a for a in argv])
    err = capsys.readouterr().err
    assert rc == 2 and f"lowloss: error: {field}" in err and "Traceback" not in err


def test_recipe_descriptions_run_on_to_the_sentence_end_without_paper_paths():
    from lowloss.jobs import recipe_description, recipes

    text = (
        '# source: Xu et al., "Mining" (../shared/papers/x.txt),\n# CI-sized on digits: three modes.\n'
        "# A second paragraph.\n[study]\n"
    )
    assert recipe_description(text) == 'Xu et al., "Mining", CI-sized on digits: three modes'
    assert recipe_description("# source: LLPF Table 3 — LeNet5\n# The study runs.\n") == "LLPF Table 3 — LeNet5"
    for name, path in recipes().items():  # every recipe has a description, none shows a path
        desc = recipe_description(path.read_text())
        assert desc and "papers/" not in desc and len(desc) <= 222, name


READ_COMMANDS = {
    "status": [],
    "verify": [],
    "report": [],
    "show": ["abc"],
    "logs": ["abc"],
    "resume": [],
    "results": ["--stage", "modes"],
    "cancel": [],
}


@pytest.mark.parametrize("command", sorted(READ_COMMANDS))
def test_a_store_path_that_is_a_file_is_one_line_exit_2(command, tmp_path, capsys):
    """The spec given where the store belongs (or a path under a file): named, with what is expected."""
    from lowloss.orchestrator.cli import main

    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text())
    for path in (spec, spec / "store"):
        rc = main([command, str(path), *READ_COMMANDS[command]])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert f"{spec} is a file, not a directory" in err and "store directory" in err


def test_a_profile_given_to_a_local_run_is_checked(tmp_path, capsys):
    """A typo'd --profile never passes silently, whatever the executor: exit 2 before the store is touched."""
    from lowloss.orchestrator.cli import main

    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text())
    rc = main(["run", str(spec), "--store", str(tmp_path / "s"), "--profile", "/nonexistent.toml"])
    err = capsys.readouterr().err
    assert rc == 2 and "run.profile = '/nonexistent.toml'" in err and "example-h100" in err
    assert not (tmp_path / "s").exists()


def test_device_cuda_without_a_gpu_is_an_edge_error_for_a_local_run(tmp_path, capsys, monkeypatch):
    """`--device cuda` where torch sees no GPU: one line, exit 2, nothing run (not every retry of every unit)."""
    import torch

    from lowloss.orchestrator.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text())
    rc = main(["run", str(spec), "--store", str(tmp_path / "s"), "--device", "cuda"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "--device = 'cuda'" in err and "no CUDA GPU" in err and "--device cpu" in err
    assert not (tmp_path / "s").exists()


MANY_LINES = """
    [[stages]]
    name = "modes"
    kind = "train"

    [[stages]]
    name = "lmc"
    kind = "interpolate"
    from = "modes"
    points = 5

    [[stages]]
    name = "wide"
    kind = "interpolate"
    from = "modes"
    points = 9
"""


@pytest.mark.parametrize(
    "stages, sweep, needle",
    [
        (MANY_LINES, "", "stages.wide: with this stage the study would be 299,998 units"),
        (None, "[sweep]\ntrain.lr = [0.01, 0.1, 1.0]\n", "stages.modes: with this stage the study would be 300,000"),
    ],
    ids=["two-lines-per-pair", "swept-modes"],
)
def test_a_study_past_max_units_is_refused_from_its_counts_without_planning(
    tmp_path, capsys, monkeypatch, stages, sweep, needle
):
    """Issue 23 item 7: 100 000 seeds past run.max_units are refused by arithmetic over the spec, before a unit is
    planned: one line with the stage, the count, the limit and the fix; exit 2; no store."""
    from lowloss.orchestrator.cli import main
    from lowloss.orchestrator.engine.graph import Planner

    monkeypatch.setattr(Planner, "_plan_stage", lambda self, name: pytest.fail("the planner planned a stage"))
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text(seeds="{start = 0, count = 100000}", stages=stages) + sweep)
    for argv in (["run", str(spec), "--store", str(tmp_path / "s")], ["validate", str(spec)], ["plan", str(spec)]):
        rc = main(argv)
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1, err
        assert err.startswith(f"lowloss: error: {spec}: ") and needle in err, err
        assert (
            "100,000 seeds in study.seeds" in err and "run.max_units = 200,000" in err and "raise run.max_units" in err
        )
    assert not (tmp_path / "s").exists()


def _fake_slurm(folder, scontrol: str) -> str:
    """A PATH whose sbatch and scontrol answer as where no Slurm controller is reachable."""
    folder.mkdir()
    for name, body in (("sbatch", "echo 'sbatch: fatal: Could not establish a configuration source' >&2; exit 1"),
                       ("scontrol", scontrol)):  # fmt: skip
        (folder / name).write_text(f"#!/bin/sh\n{body}\n")
        (folder / name).chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


@pytest.mark.parametrize(
    "scontrol, said",
    [
        (
            "echo 'scontrol: fatal: Could not establish a configuration source' >&2; exit 1",
            "(`scontrol ping`: scontrol: fatal: Could not establish a configuration source)",
        ),
        ("echo 'Slurmctld(primary) at head is DOWN'; exit 1", "(`scontrol ping`: Slurmctld(primary) at head is DOWN)"),
        ("exec sleep 30", "(`scontrol ping` had no answer in 0.5 s)"),
    ],
    ids=["no-configuration", "controller-down", "no-answer"],
)
def test_slurm_without_a_controller_that_answers_is_refused_before_the_store_is_made(
    tmp_path, capsys, monkeypatch, scontrol, said
):
    """Issue 23: `--executor slurm` where no controller answers: one line naming what failed and the fix, exit 2, no
    store left behind (not sbatch's fatal error, exit 1 and advice to resume a store that holds nothing)."""
    from lowloss.orchestrator.cli import main
    from lowloss.orchestrator.executors import slurm

    monkeypatch.setenv("PATH", _fake_slurm(tmp_path / "bin", scontrol))
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "nonexistent" / "slurm.conf"))
    monkeypatch.setattr(slurm, "PING_TIMEOUT_S", 0.5)
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text())
    rc = main(["run", str(spec), "--store", str(tmp_path / "s"), "--executor", "slurm"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("lowloss: error: --executor = 'slurm': no Slurm controller answers " + said), err
    assert "SLURM_CONF" in err and "--executor local|ray" in err and "resume" not in err
    assert not (tmp_path / "s").exists()
