#!/usr/bin/env bash
# Playbook benchmark: wall time of a fresh converge of the Molecule default
# container, of a no-change re-converge, and of a deploy of a one-line app
# change, plus the ten slowest tasks of the fresh converge (Ansible's task
# profiler). Options: --runs N (default 3), --label NAME.
# Sets itself up like scripts/test; uses (and destroys) the default scenario's
# container, so do not run it beside `scripts/test` or `scripts/up`.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
runs=3
label="$(git rev-parse --short HEAD)$(git diff --quiet -- roles playbooks app || echo -dirty)"
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --label) label=$2; shift 2 ;;
    *) echo "usage: bench/playbook.sh [--runs N] [--label NAME]" >&2; exit 2 ;;
  esac
done

scripts/setup-controller
export PATH="$root/.tools/uv/bin:$PATH"
export CONTAINERS_CONF="$root/molecule/containers.conf"
uv sync --locked --quiet
scripts/build-test-image >/dev/null
exec uv run python bench/playbook_bench.py --runs "$runs" --label "$label"
