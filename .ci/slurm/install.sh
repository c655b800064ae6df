#!/usr/bin/env bash
# Debian's SLURM for tests/test_slurm_cluster.py (tests/slurm_cluster.py starts a one-node cluster):
# controller, node daemon, client commands and MUNGE authentication, plus slurmdbd with MariaDB
# (submitit reads job states with sacct, which needs accounting). Idempotent: installs only what
# is missing, and with nothing missing exits 0 without touching apt.
set -euo pipefail

packages=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)

missing=()
for package in "${packages[@]}"; do
  if [ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" != "install ok installed" ]; then
    missing+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

export DEBIAN_FRONTEND=noninteractive  # no debconf questions
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
