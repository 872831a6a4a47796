"""The two-process import (src.bulkimport, what `import FILE` runs) gives
exactly the database that reading the file and db.replace_spots give, and
changes nothing when the file or a worker fails."""

import random
import re

import pytest

from src import bulkimport, db
from src.demo import generate
from src.importer import ImportFileError, read_spot_file, write_spot_file

from .conftest import dump, make_database

TIMES = re.compile(r"^(INSERT INTO \"import_batches\" VALUES\(\d+,'[^']*'),"
                   r"'[^']*',(?:'[^']*'|NULL),'[^']*',(?:'[^']*'|NULL),")


def contents(path) -> list[str]:
    """The dump without the batch rows' times and file names, the users
    (random salts) and the closures (times)."""
    return [TIMES.sub(r"\1,-,-,-,-,", line)
            for line in dump(path).splitlines()
            if not line.startswith(('INSERT INTO "users"',
                                    'INSERT INTO "month_closures"'))]


def spot_rows(count: int, seed: int = 3) -> list[tuple]:
    rows, _ = generate(count, seed, "2025-01", 6)
    rows = list(rows)
    rng = random.Random(seed)
    rng.shuffle(rows)
    # customers whose names differ only in case are one customer, the
    # first spelling in the file is kept
    for i in range(0, len(rows), 7):
        rows[i] = rows[i][:3] + (rows[i][3].upper(),) + rows[i][4:]
    return rows


def one_process(conn, path, **kwargs):
    return db.replace_spots(conn, read_spot_file(path), **kwargs)


def refused(db_path, path, error, match=None, **kwargs):
    """Import `path` into the database at `db_path` expecting `error`;
    checks nothing was written and the connection is left as it was
    (foreign keys on, no transaction, no scratch database attached).
    Returns the exception."""
    before = dump(db_path)
    conn = db.connect(db_path)
    try:
        with pytest.raises(error, match=match) as raised:
            bulkimport.import_spot_file(conn, path, source_file="x", **kwargs)
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert not conn.in_transaction
        assert conn.execute("PRAGMA database_list").fetchall()[-1][1] == "main"
    finally:
        conn.close()
    assert dump(db_path) == before
    return raised.value


def imported(tmp_path, name, files, importer, *, close=(), budgets=()):
    """A database with the conftest fixture and `files` imported in turn
    by `importer`; months in `close` closed before the last import."""
    path = tmp_path / f"{name}.db"
    make_database(path)
    conn = db.connect(path)
    try:
        results = []
        for i, file in enumerate(files):
            if i == len(files) - 1:
                for month in close:
                    db.close_month(conn, month, "test")
            results.append(importer(conn, file, source_file=str(file)))
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        return path, results
    finally:
        conn.close()


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_same_database_as_one_process(tmp_path, suffix, monkeypatch):
    monkeypatch.setattr(bulkimport, "_one_process", None)  # not used
    rows = spot_rows(3000)
    first = tmp_path / f"first{suffix}"
    write_spot_file(first, rows)
    # the second file replaces some months, adds one, misses others
    second = tmp_path / f"second{suffix}"
    again = [r for r in spot_rows(2000, seed=5) if r[2] >= "2025-03"]
    write_spot_file(second, again)
    files = [first, second, first]
    old, old_results = imported(tmp_path, "old", files, one_process,
                                close=["2025-02"])
    new, new_results = imported(tmp_path, "new", files,
                                bulkimport.import_spot_file,
                                close=["2025-02"])
    assert contents(new) == contents(old)
    assert [(r.rows_written, r.months, r.skipped_months, r.rows_skipped)
            for r in new_results] == [
        (r.rows_written, r.months, r.skipped_months, r.rows_skipped)
        for r in old_results]
    assert new_results[-1].skipped_months == ["2025-02"]


def test_csv_cut_in_two_keeps_line_numbers(tmp_path):
    """A bad row in the second half is reported with its line number,
    exactly as the one-process reading reports it, and nothing changes."""
    rows = spot_rows(2000)
    path = tmp_path / "spots.csv"
    write_spot_file(path, rows)
    lines = path.read_bytes().split(b"\r\n")
    cells = lines[1500].split(b",")
    cells[2] = b"Jnu-25"
    lines[1500] = b",".join(cells)
    lines.insert(1200, b"")  # a blank line in the first half
    path.write_bytes(b"\r\n".join(lines))
    with pytest.raises(ImportFileError) as expected:
        read_spot_file(path)
    assert expected.value.errors == [
        "row 1502: broadcast_month 'Jnu-25' is not a month like Jan-26"]
    db_path = tmp_path / "x.db"
    make_database(db_path)
    assert refused(db_path, path, ImportFileError).errors == expected.value.errors


def test_quoted_csv_and_blank_lines_before_header(tmp_path):
    """Files the two halves cannot be cut from are read whole, with the
    same result."""
    rows = spot_rows(500)
    rows[10] = rows[10][:3] + ("Smith, Jones & Co",) + rows[10][4:]
    path = tmp_path / "quoted.csv"
    write_spot_file(path, rows)
    assert b'"' in path.read_bytes()
    blank = tmp_path / "blank.csv"
    blank.write_bytes(b"\r\n,,\r\n" + path.read_bytes())
    files = [path, blank]
    old, _ = imported(tmp_path, "old", files, one_process)
    new, _ = imported(tmp_path, "new", files, bulkimport.import_spot_file)
    assert contents(new) == contents(old)


def test_failing_worker_changes_nothing(tmp_path, monkeypatch):
    rows = spot_rows(500)
    path = tmp_path / "spots.csv"
    write_spot_file(path, rows)
    db_path = tmp_path / "x.db"
    make_database(db_path)
    # the workers are forked: they see the broken statement
    monkeypatch.setattr(bulkimport, "_INSERT_SPOT_WITH_ID",
                        "INSERT INTO no_such_table VALUES (?)")
    refused(db_path, path, bulkimport.WorkerError, match="no_such_table")


def test_spots_with_unknown_customers_are_refused(tmp_path, monkeypatch):
    """Foreign keys are off while the parts are copied in: the import checks
    the references itself."""
    path = tmp_path / "spots.csv"
    write_spot_file(path, spot_rows(400))
    db_path = tmp_path / "x.db"
    make_database(db_path)
    real = db._customer_ids
    # the ids the main process hands the workers point nowhere
    monkeypatch.setattr(db, "_customer_ids", lambda conn, names: {
        name: number + 100_000 for name, number in real(conn, names).items()})
    refused(db_path, path, bulkimport.WorkerError,
            match="customer or batch does not exist")


def test_archive_failure_changes_nothing(tmp_path):
    path = tmp_path / "spots.csv"
    write_spot_file(path, spot_rows(300))
    db_path = tmp_path / "x.db"
    make_database(db_path)

    def archive(batch_id):
        raise OSError("disk full")

    refused(db_path, path, OSError, match="disk full", archive=archive)


def test_one_month_file(tmp_path, monkeypatch):
    monkeypatch.setattr(bulkimport, "_one_process", None)  # not used
    rows = [r for r in spot_rows(1000) if r[2] == "2025-04"]
    path = tmp_path / "april.csv"
    write_spot_file(path, rows)
    old, _ = imported(tmp_path, "old", [path], one_process)
    new, _ = imported(tmp_path, "new", [path], bulkimport.import_spot_file)
    assert contents(new) == contents(old)



def test_workbook_halves_keep_line_numbers(tmp_path):
    from openpyxl import Workbook

    from src.importer import HEADINGS

    book = Workbook()
    sheet = book.active
    sheet.append(HEADINGS)
    for i in range(41):
        sheet.append(["A1:Acme Foods", "2025-01-06", "Jan-25", "Acme Foods",
                      "A1", "Alice", "Internal Ad Sales", "COM", "M", "LAX",
                      30, 1000.0 + i, 850, 0, "K1"])
    sheet.append([None] * 15)  # a blank row, counted but not read
    sheet.append(["A1:Acme Foods", "2025-01-06", "Jan-25", "Acme Foods",
                  "A1", "Alice", "Internal Ad Sales", "COM", "M", "LAX", 30,
                  "lots", 850, 0, "K1"])
    path = tmp_path / "log.xlsx"
    book.save(path)
    db_path = tmp_path / "x.db"
    make_database(db_path)
    assert refused(db_path, path, ImportFileError).errors == [
        "row 44: gross_rate 'lots' is not an amount of money"]
