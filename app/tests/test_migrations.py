"""Concurrent ``db upgrade``: real processes on one fresh SQLite file.

Each group of processes is forked, waits at a barrier and then upgrades
the same new database at the same moment: every process must succeed,
and the schema must be exactly what one process upgrading alone gives.
"""

import multiprocessing
import os
import re
import sys
from contextlib import redirect_stderr, redirect_stdout

from src import db

from .conftest import dump

GROUPS = 6
PROCESSES = 2
CONTEXT = multiprocessing.get_context("fork")


def _single_process_result(tmp_path):
    path = tmp_path / "reference.db"
    conn = db.connect(path, create=True)
    try:
        assert db.upgrade(conn) == (0, db.LATEST_VERSION)
        version = db.schema_version(conn)
    finally:
        conn.close()
    return dump(path), version


def _final_result(path):
    conn = db.connect(path)
    try:
        version = db.schema_version(conn)
    finally:
        conn.close()
    return dump(path), version


def _upgrade_in_process(barrier, path, results):
    """Child: connect and upgrade (db.upgrade itself, no CLI around it)."""
    barrier.wait(timeout=30)
    try:
        conn = db.connect(path, create=True)
        try:
            results.put(("ok", db.upgrade(conn)))
        finally:
            conn.close()
    except BaseException as exc:  # reported to the test
        results.put(("error", f"{type(exc).__name__}: {exc}"))
        sys.exit(1)


def _cli_in_process(barrier, env, args, out_path):
    """Child: run ``ctv-bookedbiz ARGS`` (click's main, in this process),
    its stdout and stderr going to ``out_path``; exits with its code."""
    os.environ.update(env)
    from src.cli import main

    with open(out_path, "w") as out, redirect_stdout(out), redirect_stderr(out):
        barrier.wait(timeout=30)
        try:
            main(args, prog_name="ctv-bookedbiz")
        except SystemExit as exc:
            code = exc.code or 0
        else:
            code = 0
    sys.exit(code)


def test_concurrent_db_upgrade_processes(tmp_path):
    """db.upgrade in processes started together on a fresh file."""
    expected = _single_process_result(tmp_path)
    for group in range(GROUPS):
        path = str(tmp_path / f"race-{group}.db")
        barrier = CONTEXT.Barrier(PROCESSES)
        results = CONTEXT.Queue()
        processes = [
            CONTEXT.Process(target=_upgrade_in_process, args=(barrier, path, results)) for _ in range(PROCESSES)
        ]
        for process in processes:
            process.start()
        outcomes = [results.get(timeout=60) for _ in processes]
        for process in processes:
            process.join(timeout=60)
        assert [o for o in outcomes if o[0] != "ok"] == [], f"group {group}"
        assert [p.exitcode for p in processes] == [0] * PROCESSES
        ranges = sorted(result for _, result in outcomes)
        # someone started from nothing, everyone ended at the latest
        assert ranges[0][0] == 0, ranges
        assert all(after == db.LATEST_VERSION for _, after in ranges)
        assert _final_result(path) == expected, f"group {group}"


UPGRADED = re.compile(r"^schema upgraded from version (\d+) to (\d+)\n\Z")
UP_TO_DATE = f"schema up to date at version {db.LATEST_VERSION}\n"


def test_concurrent_cli_db_upgrade(tmp_path):
    """``ctv-bookedbiz db upgrade`` in processes started together."""
    expected = _single_process_result(tmp_path)
    for group in range(GROUPS):
        path = tmp_path / f"cli-race-{group}.db"
        env = {"DATABASE_PATH": str(path), "CTV_BOOKEDBIZ_ENV": "production"}
        barrier = CONTEXT.Barrier(PROCESSES)
        outs = [tmp_path / f"cli-race-{group}-{i}.out" for i in range(PROCESSES)]
        processes = [
            CONTEXT.Process(target=_cli_in_process, args=(barrier, env, ["db", "upgrade"], str(out))) for out in outs
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=60)
        outputs = [out.read_text() for out in outs]
        assert [p.exitcode for p in processes] == [0] * PROCESSES, outputs
        upgraded = [UPGRADED.match(o) for o in outputs]
        for output, match in zip(outputs, upgraded, strict=True):
            assert match or output == UP_TO_DATE, output
        ranges = sorted((int(m[1]), int(m[2])) for m in upgraded if m)
        assert ranges and ranges[0][0] == 0, outputs
        assert all(after == db.LATEST_VERSION for _, after in ranges)
        assert _final_result(path) == expected, f"group {group}"


def test_migration_4_keeps_every_batch_and_gives_autoincrement(tmp_path):
    """A version-3 database with batches, spots, totals and budgets: after
    the upgrade every row is the same, foreign keys hold and are on, and
    ids go on after the highest one ever given."""
    from .conftest import SPOTS

    path = tmp_path / "v3.db"
    conn = db.connect(path, create=True)
    for version in range(3):
        with db.transaction(conn):
            for statement in db._statements(db.MIGRATIONS[version]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
    with db.transaction(conn):
        conn.execute("INSERT INTO customers (id, name) VALUES (1, 'Acme')")
        for batch in (1, 2, 5):
            conn.execute(
                "INSERT INTO import_batches (id, kind, source_file,"
                " started_at, status) VALUES (?, 'import', 'f.csv',"
                " 't', 'completed')",
                (batch,),
            )
        conn.execute(
            "INSERT INTO spots (bill_code, air_date, broadcast_month,"
            " customer_id, revenue_type, gross_rate, station_net,"
            " broker_fees, import_batch_id) VALUES ('A:Acme',"
            " '2025-01-06', '2025-01', 1, 'X', 1, 1, 0, 5)"
        )
        conn.execute("INSERT INTO budgets VALUES ('Al', '2025-01', 9, 2)")
    rows = {
        table: conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
        for table in ("import_batches", "spots", "budgets", "customers")
    }
    assert db.upgrade(conn) == (3, db.LATEST_VERSION)
    assert {table: conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall() for table in rows} == rows
    assert "AUTOINCREMENT" in conn.execute("SELECT sql FROM sqlite_master WHERE name = 'import_batches'").fetchone()[0]
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    with db.transaction(conn):
        conn.execute("DELETE FROM spots")
        conn.execute("DELETE FROM import_batches WHERE id = 5")
    result = db.replace_spots(conn, SPOTS[:1], source_file="next.csv")
    assert result.batch_id == 6
    conn.close()


def test_a_migration_that_breaks_a_reference_is_rolled_back(tmp_path, monkeypatch):
    """Foreign keys are off while migrating, and checked before commit."""
    from .conftest import make_database

    path = tmp_path / "x.db"
    make_database(path)
    monkeypatch.setattr(db, "MIGRATIONS", db.MIGRATIONS + ("DELETE FROM customers;",))
    monkeypatch.setattr(db, "LATEST_VERSION", len(db.MIGRATIONS))
    before = dump(path)
    conn = db.connect(path)
    try:
        import pytest

        with pytest.raises(RuntimeError, match="leaves a row of spots referring to no row of customers"):
            db.upgrade(conn)
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    finally:
        conn.close()
    assert dump(path) == before
