#!/usr/bin/env bash
# The README's test command: everything from a fresh machine.
#   1. a fresh virtual environment (.venv, recreated), lowloss installed into it exactly as the README says;
#   2. Slurm + munge (+ slurmdbd/mariadb) from Debian's packages, and the one-machine test cluster started
#      (when slurm/testcluster.sh is present), stopped again on exit;
#   3. lint: ruff (rules and format) and mypy over the package lowloss (tests/typecheck.sh);
#   4. the whole pytest suite (extra arguments go to pytest, e.g. `-m "not slow"` for the fast tests only).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${LOWLOSS_VENV:-.venv}
PY=${PYTHON:-python3}
START=$SECONDS
PHASE_START=$SECONDS
IN_PHASE=0
phase() {  # "== what" with the time the previous phase took (the README's timings come from these lines)
  if [[ $IN_PHASE == 1 ]]; then echo "   ($((SECONDS - PHASE_START)) s)"; fi
  PHASE_START=$SECONDS
  IN_PHASE=1
  if [[ $# -gt 0 ]]; then echo "== $*"; fi
}

phase "fresh virtual environment in $VENV"
"$PY" -m venv --clear "$VENV"
quiet() { "$@" 2>&1 | (grep -v "^WARNING: Location 'file:" || true); }  # this machine's pip notes about absent local indexes
quiet "$VENV/bin/pip" install -q --upgrade pip
phase "installing lowloss (torch 2.14.1 / torchvision 0.29.1, then the project with its test extra)"
quiet "$VENV/bin/pip" install -q torch==2.14.1 torchvision==0.29.1
quiet "$VENV/bin/pip" install -q ".[test]"

phase "lint (ruff check, ruff format --check, mypy)"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
MYPY="$VENV/bin/mypy" bash tests/typecheck.sh

cluster_started=0
if [[ -x slurm/testcluster.sh || -f slurm/testcluster.sh ]] && [[ "${LOWLOSS_NO_SLURM:-0}" != 1 ]]; then
  phase "Slurm test cluster"
  bash slurm/install-deps.sh
  bash slurm/testcluster.sh start
  cluster_started=1
  # shellcheck disable=SC1091
  source "${LOWLOSS_TESTCLUSTER_DIR:-/tmp/lowloss-testcluster}/env.sh"
fi
cleanup() { if [[ $cluster_started == 1 ]]; then bash slurm/testcluster.sh stop || true; fi; }
trap cleanup EXIT

phase "pytest"
export PATH="$PWD/$VENV/bin:$PATH"
set +e
# two workers (LOWLOSS_TEST_WORKERS=0: one process), a test file per worker at a time: a file's module fixtures are
# built once, and the Slurm tests (all in test_executor_slurm.py) and the Ray tests (test_executor_ray.py) never run
# beside others of their kind; the longest files go out first (tests/conftest.py, LONGEST_FIRST)
"$VENV/bin/python" -m pytest -n "${LOWLOSS_TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder "$@"
rc=$?
set -e
phase
echo "== total $((SECONDS - START)) s"
if [[ $rc == 5 ]]; then echo "pytest collected no tests: that is a failure" >&2; fi
exit $rc
