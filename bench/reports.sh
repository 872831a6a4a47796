#!/bin/sh
# Reports benchmark; options: --runs N --spots N --label NAME
set -e
cd "$(dirname "$0")/../app"
exec uv run --locked python ../bench/reports_bench.py "$@"
