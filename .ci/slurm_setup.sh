#!/usr/bin/env bash
# Install a one-node SLURM (Debian's slurm-wlm, with munge) and submitit on a fresh Debian machine,
# so that tests/test_slurm.py runs against a real scheduler instead of skipping. The tests start and
# stop munged, slurmctld and slurmd themselves (tests/slurm_cluster.py); nothing is started here.
# Needs root (apt-get, and slurmd runs jobs as root in the test cluster).
#   bash .ci/slurm_setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "slurm_setup.sh: needs root (apt-get install slurm-wlm); the SLURM tests will skip" >&2
  exit 0
fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends slurm-wlm munge
fi
# Debian's munge package creates the key at install time; make one if an image removed it.
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  chown munge:munge /etc/munge/munge.key 2>/dev/null || true
  chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge
python3 -m pip install -q -e ".[slurm]"
echo "slurm_setup.sh: $(slurmctld -V), submitit $(python3 -c 'import submitit; print(submitit.__version__)')"
