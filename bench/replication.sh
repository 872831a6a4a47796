#!/usr/bin/env bash
# Replication benchmark: the recovery point (commit on the app host to its
# arrival on the backup host) at idle and under a 400,000-spot import, the
# replicator's CPU and memory during that import, and the recovery time
# (a new bare Debian 13 host to serving the restored database: converge +
# restore from the replica). Options: --runs N (default 1), --idle-samples N
# (default 20), --label NAME.
# Sets itself up like scripts/test; uses (and destroys) the default
# scenario's two containers, so do not run it beside `scripts/test` or
# `scripts/up`.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
runs=1
idle=20
label="$(git rev-parse --short HEAD)$(git diff --quiet -- roles playbooks app inventory || echo -dirty)"
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --idle-samples) idle=$2; shift 2 ;;
    --label) label=$2; shift 2 ;;
    *) echo "usage: bench/replication.sh [--runs N] [--idle-samples N] [--label NAME]" >&2; exit 2 ;;
  esac
done

scripts/setup-controller
export PATH="$root/.tools/uv/bin:$PATH"
export CONTAINERS_CONF="$root/molecule/containers.conf"
# Molecule's state goes to the benchmark's own scratch directory.
unset MOLECULE_EPHEMERAL_DIRECTORY
uv sync --locked --quiet
# Debian 12 for both hosts; Debian 13 for the rebuilt app host.
scripts/build-test-image bookworm >/dev/null
scripts/build-test-image trixie >/dev/null
exec uv run python bench/replication_bench.py --runs "$runs" --idle-samples "$idle" --label "$label"
