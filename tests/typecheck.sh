#!/usr/bin/env bash
# mypy over lowloss as Python resolves it. The installed package lowloss is assembled from five folders (pyproject's
# package-dir: lowloss_root/ is lowloss, orchestrator/ is lowloss.orchestrator, ...), and the relative imports between
# them (`from ...jobs import base`) only resolve in that shape, so mypy reads a tree of links that has it:
# build/typecheck/lowloss/{__init__.py,orchestrator,jobs,workers,slurm}. The benchmarks (bench/) are checked against
# it too, so an API change cannot leave them behind. Settings: [tool.mypy] in pyproject.toml.
set -euo pipefail
MYPY=${MYPY:-mypy}
if [[ $MYPY == */* && $MYPY != /* ]]; then MYPY="$PWD/$MYPY"; fi  # a relative path, from where it was called
cd "$(dirname "$0")/.."
ROOT=$PWD
TREE=build/typecheck
rm -rf "$TREE/lowloss"
mkdir -p "$TREE/lowloss"
for file in lowloss_root/*.py; do ln -s "$ROOT/$file" "$TREE/lowloss/$(basename "$file")"; done
for floor in orchestrator jobs workers slurm; do ln -s "$ROOT/$floor" "$TREE/lowloss/$floor"; done
cd "$TREE"
"$MYPY" --config-file "$ROOT/pyproject.toml" -p lowloss "$@"
"$MYPY" --config-file "$ROOT/pyproject.toml" "$ROOT"/bench/*.py "$ROOT"/bench/plugins/*.py "$@"
