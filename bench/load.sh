#!/bin/sh
# Load benchmark; options: --duration S --connections N --threads N
#                          --runs N --spots N --label NAME
set -e
if ! command -v wrk >/dev/null 2>&1; then
    echo "installing wrk (Debian package) ..." >&2
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get install -y wrk >/dev/null ||
        { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y wrk >/dev/null; }
fi
cd "$(dirname "$0")/../app"
exec uv run --locked python ../bench/load_bench.py "$@"
