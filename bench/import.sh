#!/bin/sh
# Import benchmark; options: --runs N --spots N --label NAME --skip-xlsx
set -e
cd "$(dirname "$0")/../app"
exec uv run --locked python ../bench/import_bench.py "$@"
