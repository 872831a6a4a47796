"""Import benchmark: `ctv-bookedbiz import` of 400,000 demo spots as CSV and
as .xlsx (end to end, a fresh process each time), against SQLite inserting
the same rows with a bare executemany in one transaction.  Each import's
peak memory is the process's maximum resident set (ru_maxrss from wait4;
for a process that forks, the largest of it and its children).

    bench/import.sh [--runs 3] [--spots 400000] [--label NAME]
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import time

import _common as c


def timed_import(env: dict, path) -> tuple[float, float, float]:
    """(wall s, CPU s, peak resident MB) of one `ctv-bookedbiz import`."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [c.cli_path(), "import", str(path)], env=env, cwd=c.APP, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = process.stdout.read(), process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stdout.close()
    process.stderr.close()
    if process.returncode != 0:
        sys.exit(f"import {path} failed:\n{out.decode()}{err.decode()}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def import_runs(path, runs: int) -> dict:
    """Wall time, CPU time and peak memory of `import FILE` into an empty
    database, then again into the populated one (every month replaced)."""
    out = {f"{key}_{what}": [] for key in ("empty_db", "replace") for what in ("s", "cpu_s", "peak_mb")}
    _, env = c.fresh_database("import")
    timed_import(env, path)  # untimed: bytecode caches, the file in the page cache
    for _ in range(runs):
        _, env = c.fresh_database("import")
        for key in ("empty_db", "replace"):
            wall, cpu, peak = timed_import(env, path)
            out[key + "_s"].append(wall)
            out[key + "_cpu_s"].append(cpu)
            out[key + "_peak_mb"].append(peak)
    return out


def read_times(path, runs: int) -> list[float]:
    """In-process reading and validating alone (no database)."""
    from src.importer import read_spot_file

    times = []
    for _ in range(runs):
        gc.disable()
        started = time.perf_counter()
        read_spot_file(path)
        times.append(time.perf_counter() - started)
        gc.enable()
    return times


BARE_INSERT = (
    "INSERT INTO spots (bill_code, air_date, broadcast_month, customer_id,"
    " agency, sales_person, revenue_type, spot_type, language_code, market,"
    " length_seconds, gross_rate, station_net, broker_fees, contract,"
    " source_file, import_batch_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def bare_insert(rows, runs: int, *, order: str) -> list[float]:
    """BEGIN; one executemany of every row; COMMIT -- into the app's schema
    (same table, same indexes, same connection settings).  Customers and
    the batch row exist beforehand; building the parameter tuples is not
    timed.  The values are those the importer stores (spots.source_file
    NULL: since the import changes of 2026-11-26 the batch row names the
    file; before them the file's path was stored in every spot and the
    bare insert wrote it too)."""
    from src import db

    if order == "month":
        rows = sorted(rows, key=lambda r: (r[2], r[3]))
    times = []
    for _ in range(runs):
        db_path, _ = c.fresh_database("bare")
        conn = db.connect(db_path)
        with db.transaction(conn):
            batch = conn.execute(
                "INSERT INTO import_batches (kind, source_file, started_at) VALUES ('bench', 'bench', '')"
            ).lastrowid
            ids = {}
            for row in rows:
                if row[3] not in ids:
                    ids[row[3]] = conn.execute("INSERT INTO customers (name) VALUES (?)", (row[3],)).lastrowid
        params = [(*row[:3], ids[row[3]], *row[4:], None, batch) for row in rows]
        gc.disable()
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(BARE_INSERT, params)
        conn.execute("COMMIT")
        times.append(time.perf_counter() - started)
        gc.enable()
        conn.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--spots", type=int, default=c.SPOTS)
    parser.add_argument("--label", help="results file tag (default: commit)")
    parser.add_argument("--skip-xlsx", action="store_true")
    args = parser.parse_args()

    files = {"csv": c.spot_file("csv", args.spots)}
    if not args.skip_xlsx:
        files["xlsx"] = c.spot_file("xlsx", args.spots)
    results: dict = {"spots": args.spots, "runs": args.runs, "formats": {}}
    for kind, path in files.items():
        print(f"import {path.name} x{args.runs} ...", flush=True)
        times = import_runs(path, args.runs)
        times["read_validate_s"] = read_times(path, args.runs)
        summary = {key: c.median(values) for key, values in times.items()}
        summary["rows_per_s"] = args.spots / summary["empty_db_s"]
        summary["replace_rows_per_s"] = args.spots / summary["replace_s"]
        summary["cpu_rows_per_s"] = args.spots / summary["empty_db_cpu_s"]
        results["formats"][kind] = {"file_mb": round(path.stat().st_size / 1e6, 1), "runs_s": times, "median": summary}

    from src.importer import read_spot_file

    rows = read_spot_file(files["csv"])
    rows = rows.rows() if hasattr(rows, "rows") else rows  # before 2026-11-30 a list
    bare = {order: bare_insert(rows, args.runs, order=order) for order in ("file", "month")}
    limit = min(c.median(v) for v in bare.values())
    results["bare_insert"] = {
        "runs_s": bare,
        "median_s": {k: c.median(v) for k, v in bare.items()},
        "limit_s": limit,
        "limit_rows_per_s": args.spots / limit,
    }
    csv_s = results["formats"]["csv"]["median"]["empty_db_s"]
    results["csv_vs_bare"] = csv_s / limit

    print()
    print(f"{'what':44} {'median s':>9} {'rows/s':>10}")
    for kind, entry in results["formats"].items():
        m = entry["median"]
        for key, text in (
            ("empty_db_s", "import into empty db"),
            ("empty_db_cpu_s", "  its CPU time (user+sys)"),
            ("replace_s", "import again (replace)"),
            ("read_validate_s", "read+validate only"),
        ):
            print(f"{kind + ' ' + text:44} {m[key]:9.2f} {args.spots / m[key]:10,.0f}")
        print(
            f"{kind + ' import peak memory (MB, empty / replace)':44} "
            f"{m['empty_db_peak_mb']:9.0f} {m['replace_peak_mb']:10.0f}"
        )
    for order, value in results["bare_insert"]["median_s"].items():
        print(f"{'bare executemany, rows in ' + order + ' order':44} {value:9.2f} {args.spots / value:10,.0f}")
    print(f"CSV import / bare-insert limit: {results['csv_vs_bare']:.2f}x")
    c.write_results("import", args.label, results)


if __name__ == "__main__":
    main()
