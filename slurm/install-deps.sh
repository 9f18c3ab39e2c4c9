#!/usr/bin/env bash
# Installs what the one-machine Slurm test cluster (slurm/testcluster.sh) needs, from Debian's packages:
#   slurm-wlm (slurmctld, slurmd, clients), munge, slurmdbd, mariadb-server.
# Idempotent and non-interactive: does nothing (no apt-get update) when all of them are installed already.
# Package postinst scripts are kept from starting any daemon (testcluster.sh starts and stops them itself).
set -euo pipefail

PKGS=(slurm-wlm munge slurmdbd mariadb-server)
# The programs testcluster.sh runs; checked after installing so a broken install fails here, not later.
PROGS=(munged mungekey slurmctld slurmd slurmdbd sinfo sbatch sacct sacctmgr scontrol mysql mysqladmin)

die() { echo "install-deps.sh: $*" >&2; exit 1; }

is_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
for p in "${PKGS[@]}"; do
  is_installed "$p" || missing+=("$p")
done

if ((${#missing[@]} > 0)); then
  [[ $(id -u) == 0 ]] || die "need root to install ${missing[*]} (run: sudo bash $0)"
  command -v apt-get >/dev/null || die "apt-get not found: this script supports Debian/Ubuntu only"
  echo "install-deps.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  log=$(mktemp /tmp/lowloss-install-deps.XXXXXX.log)

  # Without systemd, invoke-rc.d may still start munge/mariadb from the packages' postinst; a policy-rc.d that
  # answers 101 ("action forbidden") prevents that. Only installed when none exists, and removed again on exit.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  cleanup() { if ((own_policy)); then rm -f "$policy"; fi; }
  trap cleanup EXIT
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
  fi

  apt-get update -q >>"$log" 2>&1 || { tail -n 20 "$log" >&2; die "apt-get update failed (full log: $log)"; }
  apt-get install -y -q "${missing[@]}" >>"$log" 2>&1 \
    || { tail -n 20 "$log" >&2; die "apt-get install ${missing[*]} failed (full log: $log)"; }
  for p in "${missing[@]}"; do
    is_installed "$p" || die "package $p is still not installed after apt-get install (log: $log)"
  done
  rm -f "$log"
else
  echo "install-deps.sh: ${PKGS[*]} already installed"
fi

for prog in "${PROGS[@]}"; do
  command -v "$prog" >/dev/null || die "program '$prog' not found on PATH although ${PKGS[*]} are installed"
done
