"""Shared helpers of the benchmarks (not tests: they assert no times)."""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
APP = ROOT / "app"
RESULTS = BENCH / "results"
# Generated files and databases (large: keep them out of the tree).
WORK = Path(os.environ.get("BENCH_WORK", Path(tempfile.gettempdir()) / "ctv-bench"))

SPOTS = 400_000
SEED = 1
START = "Jan-25"  # fixed, so that the figures do not depend on today
YEAR = 2026  # the second of the 24 months generated
USER = "bench"
PASSWORD = "bench-password-1"
SECRET = "bench-secret-key-0123456789abcdef"

if str(APP) not in sys.path:
    sys.path.insert(0, str(APP))


def median(values):
    return statistics.median(values) if values else None


def env_for(db_path: Path, data_path: Path | None = None) -> dict:
    env = dict(os.environ)
    env["DATABASE_PATH"] = str(db_path)
    env["DATA_PATH"] = str(data_path or db_path.parent)
    env["SECRET_KEY"] = SECRET
    env.pop("CTV_BOOKEDBIZ_ENV", None)
    return env


def cli_path() -> str:
    found = shutil.which("ctv-bookedbiz")
    if found is None:
        sys.exit("ctv-bookedbiz not on PATH: run this through 'uv run' in app/ (see bench/README.md)")
    return found


def cli(env: dict, *args: str, stdin: str | None = None, timed: bool = False):
    """Run ctv-bookedbiz; when timed return (wall seconds, CPU seconds of
    the process: user + system).  CPU time is what the import costs; on a
    machine shared with other work the wall time also holds waiting."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([cli_path(), *args], env=env, input=stdin, text=True, capture_output=True, cwd=APP)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"ctv-bookedbiz {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return (elapsed, cpu) if timed else done.stdout


def spot_file(suffix: str, spots: int = SPOTS, seed: int = SEED) -> Path:
    """The demo-data export (.csv or .xlsx), generated once into WORK."""
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"spots-{spots}-seed{seed}-{START}.{suffix}"
    if not path.exists():
        print(f"generating {path.name} ...", flush=True)
        scratch = WORK / "scratch.db"
        env = env_for(scratch)
        partial = path.with_name("partial-" + path.name)
        cli(
            env,
            "demo-data",
            "--spots",
            str(spots),
            "--seed",
            str(seed),
            "--start",
            START,
            "--export",
            str(partial),
            "--no-db",
        )
        partial.rename(path)
    return path


def fresh_database(name: str) -> tuple[Path, dict]:
    """An empty, migrated database in WORK/name/ and its environment."""
    folder = WORK / name
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "data").mkdir(parents=True)
    db_path = folder / "bookedbiz.db"
    env = env_for(db_path, folder / "data")
    cli(env, "db", "upgrade")
    return db_path, env


def report_database(spots: int = SPOTS) -> tuple[Path, dict]:
    """A fresh database with the demo data (spots and budgets) and a
    viewer account, as the reports and load benchmarks use it."""
    db_path, env = fresh_database("reports")
    print(f"loading {spots} demo spots ...", flush=True)
    cli(env, "demo-data", "--spots", str(spots), "--seed", str(SEED), "--start", START)
    cli(env, "users", "add", USER, "--role", "viewer", stdin=PASSWORD + "\n")
    return db_path, env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def code_version() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True, capture_output=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "app/src"], cwd=ROOT, text=True, capture_output=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def machine() -> dict:
    import sqlite3

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }


def write_results(kind: str, label: str | None, data: dict) -> Path:
    """bench/results/YYYY-MM-DD-<kind>-<label or commit>.json"""
    RESULTS.mkdir(exist_ok=True)
    version = code_version()
    tag = label or version
    path = RESULTS / f"{date.today().isoformat()}-{kind}-{tag}.json"
    payload = {
        "benchmark": kind,
        "label": tag,
        "code": version,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **data,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"results written to {path.relative_to(ROOT)}")
    return path


def run(cmd, env=None, check=True) -> tuple[float, subprocess.CompletedProcess]:
    """(wall seconds, the finished process) of CMD run from the repository
    root; stops the benchmark when it fails."""
    started = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if check and done.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return elapsed, done
