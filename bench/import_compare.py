"""Same input, same database: `ctv-bookedbiz import FILE` by an older
commit's code and by the working tree's, compared row by row.

    cd app && uv run python ../bench/import_compare.py [--base COMMIT] FILE...

For each FILE, two fresh databases (each made by its own code's `db
upgrade`, so each at its code's schema version) are filled by: importing
FILE, importing it again (every month replaced), closing its first month
and importing FILE once more (that month skipped).  The rows of both
databases' `iterdump()` (every table, every row in rowid order, spots
with their ids) must be equal, except the columns that are times or paths
by nature: import_batches.started_at, finished_at, source_file and
stored_file.  The schema statements and SQLite's own sqlite_sequence
(AUTOINCREMENT, from migration 4) are not compared.  Exits 1 on any
difference.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import _common as c

NORMALISE = re.compile(
    r"^(INSERT INTO \"import_batches\" VALUES\(\d+,'[^']*'),"
    r"'[^']*',(?:'[^']*'|NULL),'[^']*',(?:'[^']*'|NULL),"
)


def run(code: Path, env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", "from src.cli import main; main()", *args],
        cwd=code,
        env=env,
        text=True,
        capture_output=True,
    )
    if done.returncode != 0:
        sys.exit(f"{code}: {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def fill(code: Path, work: Path, path: Path) -> list[str]:
    shutil.rmtree(work, ignore_errors=True)
    (work / "data").mkdir(parents=True)
    db_path = work / "bookedbiz.db"
    env = c.env_for(db_path, work / "data")
    run(code, env, "db", "upgrade")
    run(code, env, "import", str(path))
    run(code, env, "import", str(path))
    conn = sqlite3.connect(db_path)
    first = conn.execute("SELECT min(broadcast_month) FROM spots").fetchone()[0]
    conn.close()
    run(code, env, "close-month", first)
    run(code, env, "import", str(path))
    conn = sqlite3.connect(db_path)
    lines = [
        NORMALISE.sub(r"\1,-,-,-,-,", line)
        for line in conn.iterdump()
        if line.startswith("INSERT INTO ")
        and not line.startswith(('INSERT INTO "month_closures"', 'INSERT INTO "sqlite_sequence"'))
    ]
    conn.close()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD", help="commit whose app/src is the reference")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ctv-compare-") as tmp:
        tmp = Path(tmp)
        old = tmp / "old"
        old.mkdir()
        archive = subprocess.run(
            ["git", "archive", args.base, "app/src"], cwd=c.ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(old), "--strip-components=1"], input=archive, check=True)
        failed = False
        for path in args.files:
            path = path.resolve()
            before = fill(old, tmp / "db-old", path)
            after = fill(c.APP, tmp / "db-new", path)
            digest = hashlib.sha256("\n".join(after).encode()).hexdigest()
            spots = sum(line.startswith('INSERT INTO "spots"') for line in after)
            if before == after:
                print(f"{path.name}: identical ({len(after)} dump lines, {spots} spots, sha256 {digest[:16]})")
                continue
            failed = True
            diffs = [i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b]
            print(f"{path.name}: DIFFERENT: {len(before)} vs {len(after)} lines, {len(diffs)} differ")
            for i in diffs[:5]:
                print(f"  {args.base}: {before[i][:160]}\n  new:    {after[i][:160]}")
        sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
