#!/usr/bin/env bash
# Installs what the one-machine test cluster needs from Debian's packages (idempotent, non-interactive).
set -euo pipefail
pkgs=(slurm-wlm munge slurmdbd mariadb-server)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "slurm test-cluster packages already installed"
  exit 0
fi
if [[ $(id -u) != 0 ]]; then
  echo "install-deps.sh: need root to apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "installing ${missing[*]} (Debian packages)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || { echo "install-deps.sh: apt-get update failed" >&2; exit 1; }
apt-get install -y -qq "${missing[@]}" >/dev/null || { echo "install-deps.sh: apt-get install ${missing[*]} failed" >&2; exit 1; }
