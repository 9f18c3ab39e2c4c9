"""A 2-D landscape surface in 4 shards (issue 12), run locally and on another executor: the same digests and the same
assembled surface; shared by the Slurm and Ray tests (each stays in its own executor file)."""

from __future__ import annotations

from pathlib import Path

from conftest import digests, run_cli, spec_text

SURFACE = """
    [[stages]]
    name = "modes"
    kind = "train"

    [[stages]]
    name = "land"
    kind = "landscape"
    from = "modes"
    directions = [{kind = "gaussian", seed = 0}, {kind = "gaussian", seed = 1}]
    scales = []
    eval_examples = 300
    surface = {x_points = 4, y_points = 4, shard = [2, 2]}
"""


def surface_shards_match_local(tmp_path: Path, executor: str, *flags: str) -> Path:
    """Run the surface study locally and with ``--executor EXECUTOR *flags``; assert the same digests and the same
    assembled 4 × 4 train-loss surface. Returns the executor's store."""
    from lowloss.orchestrator.report.api import open_study
    from lowloss.workers.landscape.scans import Grid, assemble_surface

    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text(name="surface", seeds="[0]", epochs=1, segment_steps=50, stages=SURFACE))
    run_cli("run", spec, "--store", tmp_path / "local", check=True)
    proc = run_cli("run", spec, "--store", tmp_path / executor, "--executor", executor, *flags)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert digests(tmp_path / executor) == digests(tmp_path / "local")
    surfaces = []
    for store in ("local", executor):
        study = open_study(tmp_path / store)
        view = study.stage("land")
        rows = [r for u in view.units if view.kind_of(u) == "scan" for r in study.unit_rows(u, "surface").to_pylist()]
        surfaces.append(assemble_surface(rows, Grid(x_points=4, y_points=4), "train_loss"))
    assert (surfaces[0] == surfaces[1]).all()
    return tmp_path / executor
