#!/usr/bin/env bash
# Create or update the peers' virtualenv (.venv-peers at the repository root) from
# benchmarks/requirements-peers.txt. Idempotent: it does nothing when the stamp
# file it leaves behind is newer than the requirements file.
#
#   bash benchmarks/setup_peers.sh            # then: .venv-peers/bin/python benchmarks/peers/run_nannyml.py --rows 100000
#
# Environment: PYTHON (interpreter for the venv, default python3, must be 3.11+),
# PEERS_VENV (venv path, default <repo>/.venv-peers).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${PEERS_VENV:-$root/.venv-peers}"
requirements="$root/benchmarks/requirements-peers.txt"
stamp="$venv/.requirements-peers.stamp"

if [[ -f "$stamp" && "$stamp" -nt "$requirements" ]]; then
    echo "setup_peers: $venv is up to date with $(basename "$requirements")"
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    echo "setup_peers: creating $venv"
    "${PYTHON:-python3}" -m venv "$venv"
fi

echo "setup_peers: installing $(basename "$requirements") into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
"$venv/bin/python" -m pip check
# Fail here rather than in the middle of a benchmark if a peer cannot be imported.
"$venv/bin/python" -c "import alibi_detect.cd, evidently.presets, nannyml"

touch "$stamp"
echo "setup_peers: done"
