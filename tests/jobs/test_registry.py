"""The kind registry: one kind per name (a second one refused, naming both origins), unknown names listed, and a
third-party package's kinds found through its ``lowloss.kinds`` entry point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lowloss.jobs import REGISTRY, DuplicateKind, KindError, UnknownKind, get_kind, get_stage_kind
from lowloss.jobs.registry import KindRegistry
from lowloss.jobs.train import TrainUnit

EXAMPLE_PLUGIN = Path(__file__).resolve().parents[2] / "docs" / "examples" / "lowloss-norms"


def test_a_second_kind_of_a_taken_name_is_refused_naming_both_origins():
    registry = KindRegistry()
    registry.register(TrainUnit, "built in")

    class Impostor(TrainUnit):
        pass

    with pytest.raises(DuplicateKind) as err:
        registry.register(Impostor, "entry point 'x' of some-plugin")
    message = str(err.value)
    assert "'train'" in message
    assert "lowloss.jobs.train.unit.TrainUnit (built in)" in message
    assert "Impostor (entry point 'x' of some-plugin)" in message
    assert registry.unit("train").__class__ is TrainUnit  # the first one stays


def test_the_same_class_reached_twice_is_one_kind():
    registry = KindRegistry()
    first = registry.register(TrainUnit, "built in")
    assert registry.register(TrainUnit, "LOWLOSS_PLUGINS") is first


def test_an_unknown_kind_is_a_named_error_listing_the_known_ones():
    with pytest.raises(UnknownKind) as err:
        get_kind("trian")
    assert "no unit kind 'trian' is registered" in str(err.value)
    assert "train" in str(err.value) and "autoneb_edge" in str(err.value)
    with pytest.raises(UnknownKind) as err:
        get_stage_kind("llpff")
    assert "m2m" in str(err.value)


def test_what_is_not_a_kind_is_refused():
    registry = KindRegistry()
    with pytest.raises(KindError, match="neither a UnitKind nor a StageKind"):
        registry.register(object(), "test")

    class Nameless(TrainUnit):
        name = ""

    with pytest.raises(KindError, match="has no name"):
        registry.register(Nameless, "test")


def test_every_builtin_kind_is_registered_as_built_in():
    for name in ("train", "interpolate", "m2m_phase", "autoneb_edge", "path_eval", "scan", "hessian"):
        assert REGISTRY.origin(name).endswith("(built in)"), name


@pytest.mark.slow
def test_the_example_plugin_installed_as_a_package_runs_through_its_entry_point(tmp_path):
    """docs/examples/lowloss-norms, installed by pip, adds a stage kind `norms` that a study uses by name."""
    source, site = tmp_path / "lowloss-norms", tmp_path / "site"
    shutil.copytree(EXAMPLE_PLUGIN, source)  # setuptools builds in the source folder: the checkout stays untouched
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
        + ["--target", str(site), str(source)],
        check=True,
        capture_output=True,
    )
    spec = tmp_path / "norms.toml"
    spec.write_text(
        '[study]\nname = "norms"\nseeds = [0, 1]\n[data]\ndataset = "digits"\n[model]\nname = "mlp"\n'
        '[train]\nepochs = 2\n[run]\njobs = 2\n[[stages]]\nname = "modes"\nkind = "train"\n'
        '[[stages]]\nname = "norms"\nkind = "norms"\nfrom = "modes"\nbiases = true\n'
    )
    env = {k: v for k, v in os.environ.items() if k not in ("LOWLOSS_PLUGINS", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)
    store = tmp_path / "store"
    cli = [sys.executable, "-m", "lowloss.orchestrator.cli"]
    run = subprocess.run([*cli, "run", spec, "--store", store], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    results = [json.loads(p.read_text()) for p in store.glob("units/kind=weight_norms/unit=*/result.json")]
    assert sorted(r["seed"] for r in results) == [0, 1]
    for r in results:
        assert r["total_norm"] > r["largest"] > 0

    report = subprocess.run([*cli, "report", store, "--out", tmp_path / "report"], capture_output=True, env=env)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "report" / "figures" / "norms-norms.png").stat().st_size > 0

    # without the plugin on the path the same spec is refused at the edge, naming the known stage kinds
    del env["PYTHONPATH"]
    bare = subprocess.run([*cli, "plan", spec], capture_output=True, text=True, env=env)
    assert bare.returncode == 2
    assert "norms" in bare.stderr and "interpolate" in bare.stderr
    assert "Traceback" not in bare.stderr
