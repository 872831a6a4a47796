#!/bin/sh
# Import benchmark; options: --runs N --spots N --label NAME --skip-xlsx
set -e
cd "$(dirname "$0")/../app"
# Python's bytecode caches are written (and then read) as on a server, where
# the app's user owns its venv; without them every import recompiles
# polars (+0.3 s a run).
unset PYTHONDONTWRITEBYTECODE
exec uv run --locked python ../bench/import_bench.py "$@"
