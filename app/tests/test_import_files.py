"""The team's real files and the import's promises about them: the
encodings Excel writes, a file that is not a workbook, implausible years,
DATA_PATH left as it was when the disk fills up, batch ids and archived
files never used twice (also after a restore), the progress bar on a
terminal."""

import os
import pty
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from src import db, importer
from src.importer import HEADINGS, ImportFileError, read_spot_file

from .conftest import dump
from .test_cli import GOOD_ROWS, HEADER, write_csv

APP = Path(__file__).resolve().parents[1]


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_windows_1252_csv_is_read_and_named(runner, tmp_path):
    # what Excel's plain "CSV" save writes: é as 0xE9, € as 0x80
    rows = [GOOD_ROWS[0].replace(",Acme Foods,", ",Café Münch €,")]
    path = tmp_path / "excel.csv"
    path.write_bytes(("\r\n".join([HEADER, *rows]) + "\r\n").encode("cp1252"))
    result = runner("import", path)
    assert result.exit_code == 0, result.output
    assert "imported 1 spots for Jan 2025" in result.output
    assert "read as Windows-1252" in result.output
    conn = db.connect(runner.db_path)
    assert [r[0] for r in conn.execute("SELECT name FROM customers")] == ["Café Münch €"]
    conn.close()
    check = runner("import", "--check", path)
    assert check.output.startswith(f"{path} (Windows-1252): 1 valid spots")


@pytest.mark.parametrize("bom, encoding", [(b"", "UTF-8"), (b"\xef\xbb\xbf", "UTF-8 with BOM")])
def test_utf8_csv_with_and_without_bom(runner, tmp_path, bom, encoding):
    rows = [GOOD_ROWS[0].replace(",Acme Foods,", ",Café Münch €,")]
    path = tmp_path / "utf8.csv"
    path.write_bytes(bom + ("\n".join([HEADER, *rows]) + "\n").encode())
    result = runner("import", path)
    assert result.exit_code == 0, result.output
    assert f"read as {encoding}\n" in result.output


def test_a_byte_order_mark_on_a_file_that_is_not_utf8(runner, tmp_path):
    path = tmp_path / "marked.csv"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + HEADER.encode()
        + b"\n"
        + GOOD_ROWS[0].replace(",Alice,", ",Al\xefce,").encode("latin-1")
        + b"\n"
    )
    before = dump(runner.db_path)
    result = runner("import", path)
    assert result.exit_code == 1
    assert (
        "the file starts with a UTF-8 byte-order mark but is not UTF-8 "
        "text: row 2, column 6 (sales_person) has byte 0xEF"
    ) in result.output
    assert dump(runner.db_path) == before


def test_a_file_that_is_not_a_workbook_says_so(runner, tmp_path, data_dir):
    before = dump(runner.db_path)
    import zipfile

    other_zip = tmp_path / "photos.zip"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("photo.txt", "not a sheet")
    for name, content in (
        ("log.xlsx", HEADER.encode() + b"\n"),
        ("empty.xlsx", b""),
        ("zipped.xlsx", other_zip.read_bytes()),
    ):
        path = tmp_path / name
        path.write_bytes(content)
        result = runner("import", path)
        assert result.exit_code == 1
        assert (
            'the file is not an Excel workbook (.xlsx): save it from Excel as "Excel Workbook" or as CSV'
        ) in result.output
        assert "EOCD" not in result.output and "Zip" not in result.output
    assert dump(runner.db_path) == before
    assert names(data_dir) == []


@pytest.mark.parametrize(
    "column, good, bad, message",
    [
        ("air_date", "2025-01-06", "1999-12-31", "air_date '1999-12-31' is not in a year from 2000 to 2099"),
        ("air_date", "2025-01-06", "01/06/2205", "air_date '01/06/2205' is not in a year from 2000 to 2099"),
        ("broadcast_month", "Jan-25", "2100-01", "broadcast_month '2100-01' is not in a year from 2000 to 2099"),
        ("broadcast_month", "Jan-25", "1999-12", "broadcast_month '1999-12' is not in a year from 2000 to 2099"),
    ],
)
def test_years_outside_2000_to_2099_are_refused(runner, tmp_path, data_dir, column, good, bad, message):
    rows = [GOOD_ROWS[1], GOOD_ROWS[0].replace(f",{good},", f",{bad},")]
    before = dump(runner.db_path)
    result = runner("import", write_csv(tmp_path / "years.csv", rows))
    assert result.exit_code == 1
    assert f"  row 3: {message}\n" in result.output
    assert dump(runner.db_path) == before
    assert names(data_dir) == []


def test_budget_in_windows_1252_and_implausible_year(runner, tmp_path):
    path = tmp_path / "budget.csv"
    path.write_bytes("ae,month,amount\nJosé,Jan-25,100\n".encode("cp1252"))
    assert runner("import-budget", path).exit_code == 0
    path.write_text("ae,month,amount\nAlice,1999-01,100\n")
    result = runner("import-budget", path)
    assert result.exit_code == 1
    assert "row 2: month '1999-01' is not in a year from 2000 to 2099" in result.output


# --- DATA_PATH --------------------------------------------------------------


def _tmpfs(path: Path, size: str):
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


def test_a_full_disk_during_the_archive_copy_leaves_data_path_as_it_was(runner, tmp_path):
    """DATA_PATH is a 1 MiB tmpfs holding an earlier file; the import's
    copy fills it up half way: the import fails, saying so, and DATA_PATH
    holds exactly what it held (no partial copy), the database too."""
    data = tmp_path / "small"
    _tmpfs(data, "1m")
    try:
        (data / "batch-000001-earlier.csv").write_bytes(b"x" * 300_000)
        runner.env = {**runner.env, "DATA_PATH": str(data)}
        # a valid file of ~1.4 MB (its rows repeated)
        rows = GOOD_ROWS * 5000
        source = write_csv(tmp_path / "big.csv", rows)
        assert source.stat().st_size > 1_000_000
        before = dump(runner.db_path)
        listing = {p.name: p.read_bytes() for p in data.iterdir()}
        result = runner("import", source)
        assert result.exit_code == 1, result.output
        assert "cannot keep a copy of the file in DATA_PATH" in result.output
        assert "No space left on device" in result.output
        assert "Nothing was imported" in result.output
        assert {p.name: p.read_bytes() for p in data.iterdir()} == listing
        assert dump(runner.db_path) == before
        # and with room again the same import goes through
        (data / "batch-000001-earlier.csv").unlink()
        small = write_csv(tmp_path / "small.csv", GOOD_ROWS)
        assert runner("import", small).exit_code == 0
    finally:
        subprocess.run(["umount", str(data)], check=True)


def _backup(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    dst.close()
    src.close()


def test_batch_ids_are_not_reused_after_a_restore(runner, tmp_path, data_dir):
    """Batch 2's file is archived; the database is then restored from a
    copy taken after batch 1: the next import gets batch 3, and batch 2's
    archive is untouched."""
    first = write_csv(tmp_path / "log.csv", GOOD_ROWS)
    assert runner("import", first).output.startswith("batch 1:")
    _backup(runner.db_path, tmp_path / "copy.db")
    second = write_csv(tmp_path / "log.csv", GOOD_ROWS[:2])
    assert runner("import", second).output.startswith("batch 2:")
    archived = data_dir / "batch-000002-log.csv"
    kept = archived.read_bytes()
    assert kept == second.read_bytes()
    _backup(tmp_path / "copy.db", runner.db_path)  # the restore
    third = write_csv(tmp_path / "log.csv", GOOD_ROWS[2:])
    result = runner("import", third)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("batch 3:")
    assert archived.read_bytes() == kept
    assert names(data_dir) == ["batch-000001-log.csv", "batch-000002-log.csv", "batch-000003-log.csv"]
    assert (data_dir / "batch-000003-log.csv").read_bytes() == third.read_bytes()


def test_batch_ids_are_never_given_twice(runner, tmp_path, data_dir):
    """AUTOINCREMENT: the newest batch deleted, the next id is still new."""
    source = write_csv(tmp_path / "log.csv", GOOD_ROWS)
    runner("import", source)
    runner("import", source)
    conn = db.connect(runner.db_path)
    with db.transaction(conn):
        conn.execute("DELETE FROM spot_totals")
        conn.execute("DELETE FROM spots")
        conn.execute("DELETE FROM import_batches WHERE id = 2")
    conn.close()
    (data_dir / "batch-000002-log.csv").unlink()
    assert runner("import", source).output.startswith("batch 3:")


def test_an_archived_file_is_never_overwritten(runner, tmp_path, data_dir):
    source = write_csv(tmp_path / "log.csv", GOOD_ROWS)
    # a file of that name appears between choosing the id and the copy
    from src import cli

    real = cli._highest_archived
    planted = data_dir / "batch-000001-log.csv"

    def plant(folder):
        found = real(folder)
        planted.write_text("someone else's")
        return found

    cli._highest_archived = plant
    try:
        before = dump(runner.db_path)
        result = runner("import", source)
    finally:
        cli._highest_archived = real
    assert result.exit_code == 1
    assert (f"{planted} exists already: it is not overwritten. Nothing was imported.") in result.output
    assert planted.read_text() == "someone else's"
    assert names(data_dir) == ["batch-000001-log.csv"]
    assert dump(runner.db_path) == before


# --- reading ----------------------------------------------------------------


def test_quoted_fields_blank_lines_and_lone_crs(tmp_path):
    """Files polars cannot split as Python's csv module does are read by
    the csv module: the same spots, the same row numbers."""
    plain = read_spot_file(write_csv(tmp_path / "plain.csv", GOOD_ROWS)).rows()
    text = "\n".join([HEADER, *GOOD_ROWS]) + "\n"
    variants = {
        "blank lines before the header": "\n,,\n" + text,
        "old Mac line ends": text.replace("\n", "\r"),
        "a blank line in the body": text.replace(GOOD_ROWS[2], "\n " + GOOD_ROWS[2]),
    }
    for name, content in variants.items():
        path = tmp_path / "variant.csv"
        path.write_text(content, newline="")
        assert read_spot_file(path).rows() == plain, name
    bad = text.replace("\n" + GOOD_ROWS[3], "\n\n" + GOOD_ROWS[3].replace("Feb-25", "Fbe-25"))
    path = tmp_path / "bad.csv"
    path.write_text(bad)
    with pytest.raises(ImportFileError) as error:
        read_spot_file(path)
    assert error.value.errors == ["row 6: broadcast_month 'Fbe-25' is not a month like Jan-26"]


def test_workbook_row_numbers_count_blank_rows(tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(HEADINGS)
    for i in range(41):
        sheet.append(
            [
                "A1:Acme Foods",
                "2025-01-06",
                "Jan-25",
                "Acme Foods",
                "A1",
                "Alice",
                "Internal Ad Sales",
                "COM",
                "M",
                "LAX",
                30,
                1000.0 + i,
                850,
                0,
                "K1",
            ]
        )
    sheet.append([None] * 15)  # a blank row, counted but not read
    sheet.append(
        [
            "A1:Acme Foods",
            "2025-01-06",
            "Jan-25",
            "Acme Foods",
            "A1",
            "Alice",
            "Internal Ad Sales",
            "COM",
            "M",
            "LAX",
            30,
            "lots",
            850,
            0,
            "K1",
        ]
    )
    path = tmp_path / "log.xlsx"
    book.save(path)
    with pytest.raises(ImportFileError) as error:
        read_spot_file(path)
    assert error.value.errors == ["row 44: gross_rate 'lots' is not an amount of money"]


# --- the progress bar ---------------------------------------------------------


def test_progress_bar_on_a_terminal(runner, tmp_path):
    """On a terminal the import draws a bar with the rate and the time
    left, redrawn as the spots are written (stderr only)."""
    from src.demo import generate
    from src.importer import write_spot_file

    rows, _ = generate(60_000, seed=2, start="2025-01", months=3)
    source = tmp_path / "spots.csv"
    write_spot_file(source, rows)
    env = {k: v for k, v in os.environ.items() if v is not None}
    env.update({k: v for k, v in runner.env.items() if v is not None})
    for k, v in runner.env.items():
        if v is None:
            env.pop(k, None)
    env["COLUMNS"] = "120"
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-c", "from src.cli import main; main()", "import", str(source)],
            cwd=APP,
            env=env,
            stdout=subprocess.PIPE,
            stderr=secondary,
            text=True,
            timeout=120,
        )
        os.close(secondary)
        secondary = None
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if secondary is not None:
            os.close(secondary)
        os.close(primary)
    screen = b"".join(chunks).decode()
    assert done.returncode == 0, screen
    assert "imported 60000 spots" in done.stdout
    assert "rows/s" not in done.stdout
    assert f"reading {source} ..." in screen
    frames = [f for f in screen.split("\r") if "importing" in f]
    assert len(frames) >= 6, screen  # 10,000 spots at a time
    assert "100%" in frames[-1] and "rows/s" in frames[-1]
    assert "rows/s, 0.0s left" in frames[-1]
    assert all("s left" in frame for frame in frames[1:])
    percents = [int(f.split("%")[0].split()[-1]) for f in frames if "%" in f]
    assert percents == sorted(percents) and len(set(percents)) >= 6


# --- killed imports ----------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _holders(path: Path) -> list[int]:
    """Processes with ``path`` (or its -wal, -shm, .lock) open."""
    targets = {str(path) + suffix for suffix in ("", "-wal", "-shm", ".lock")}
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{entry}/fd/{fd}") in targets:
                    found.append(int(entry))
                    break
            except OSError:
                continue
    return found


def _lock_is_free(db_path: Path) -> bool:
    import fcntl

    fd = os.open(f"{db_path}.lock", os.O_RDWR | os.O_CREAT, 0o660)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.fixture
def big_import(runner, tmp_path):
    """A 120,000-spot CSV and the environment of a CLI process with its
    own empty TMPDIR."""
    from src.demo import generate
    from src.importer import write_spot_file

    rows, _ = generate(120_000, seed=4, start="2025-01", months=6)
    source = tmp_path / "big.csv"
    write_spot_file(source, rows)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = dict(os.environ)
    for k, v in runner.env.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    env["TMPDIR"] = str(scratch)
    return source, scratch, env


def _start(env, source) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from src.cli import main; main()", "import", str(source)],
        cwd=APP,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _left_behind(runner, data_dir, scratch, before, pid, children):
    """Nothing of a killed import remains."""
    assert [
        p
        for p in [pid, *children]
        if Path(f"/proc/{p}").exists() and "Z" not in Path(f"/proc/{p}/stat").read_text().split()[2]
    ] == []
    assert _holders(runner.db_path) == []
    assert _lock_is_free(runner.db_path)
    assert names(data_dir) == []
    assert names(scratch) == []
    if before is not None:
        assert dump(runner.db_path) == before
    conn = db.connect(runner.db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def _wait_for(predicate, timeout=60.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_sigterm_while_waiting_for_the_write_lock(runner, tmp_path, data_dir, big_import):
    source, scratch, env = big_import
    runner("import", write_csv(tmp_path / "first.csv", GOOD_ROWS))
    for path in data_dir.iterdir():
        path.unlink()
    before = dump(runner.db_path)
    blocker = sqlite3.connect(runner.db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the web app writing, say
    blocker.execute("UPDATE data_version SET version = version")
    try:
        process = _start(env, source)
        # read the file and now waits for SQLite's write lock
        assert _wait_for(
            lambda: (
                runner.db_path.with_name(runner.db_path.name + "-wal").exists()
                and _holders(runner.db_path).count(process.pid) == 1
                and _waiting(process)
            )
        )
        children = _children(process.pid)
        process.terminate()
        process.wait(timeout=30)
        assert _wait_for(lambda: not any(Path(f"/proc/{c}").exists() for c in children), 10)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    _left_behind(runner, data_dir, scratch, before, process.pid, children)


def _waiting(process) -> bool:
    """The import process sleeps in SQLite's busy handler (its main
    thread's wchan is a sleep, it has read the file)."""
    try:
        status = Path(f"/proc/{process.pid}/status").read_text()
    except OSError:
        return False
    rss = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
    state = next(line.split()[1] for line in status.splitlines() if line.startswith("State"))
    return rss > 60_000 and state == "S"


@pytest.mark.parametrize("delay", [0.0, 0.15, 0.3, 0.5, 0.8])
def test_sigkill_at_any_moment_of_an_import(runner, tmp_path, data_dir, big_import, delay):
    """Killed once the file is read, after ``delay`` more seconds (while it
    is checked, written, archived or committed): no process, lock or
    scratch file remains, and the import either did not happen (database
    and DATA_PATH as they were) or happened whole (its batch completed,
    its file archived)."""
    import time

    source, scratch, env = big_import
    before = dump(runner.db_path)
    process = _start(env, source)
    size = source.stat().st_size

    def has_read() -> bool:
        try:
            io = Path(f"/proc/{process.pid}/io").read_text()
        except OSError:
            return True
        return int(io.split("rchar:")[1].split()[0]) > size

    assert _wait_for(has_read)
    time.sleep(delay)
    children = _children(process.pid)
    process.kill()
    process.wait(timeout=30)
    conn = db.connect(runner.db_path)
    try:
        batches = conn.execute("SELECT status, stored_file FROM import_batches").fetchall()
    finally:
        conn.close()
    if process.returncode == 0 or batches:
        # it had committed: the whole import, its file kept
        assert [tuple(b) for b in batches] == [("completed", str(data_dir / "batch-000001-big.csv"))]
        assert names(data_dir) == ["batch-000001-big.csv"]
        for path in data_dir.iterdir():
            path.unlink()
        before = None
    elif (copy := data_dir / "batch-000001-big.csv").exists():
        # killed between naming its copy and the commit: the complete copy
        # (see test_sigkill_at_the_commit_never_leaves_a_batch_without_its_file)
        assert copy.read_bytes() == source.read_bytes()
        copy.unlink()
    _left_behind(runner, data_dir, scratch, before, process.pid, children)


# SIGKILL at the two edges of the commit, made to happen exactly there: the
# import process kills itself just before SQLite's COMMIT and just after it.
_KILLED_AT = """
import os, signal, sqlite3, sys
from src import db
from src.cli import main
edge = os.environ.pop("CTV_TEST_KILL_AT")
real = db.transaction

def transaction(conn):
    original = conn.execute

    class Killing:
        def __getattr__(self, name):
            return getattr(conn, name)

        def execute(self, sql, *args):
            if sql == "COMMIT" and edge == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            done = original(sql, *args)
            if sql == "COMMIT" and edge == "after":
                os.kill(os.getpid(), signal.SIGKILL)
            return done

    return real(Killing())

db.transaction = transaction
sys.argv = ["ctv-bookedbiz", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("edge", ["before", "after"])
def test_sigkill_at_the_commit_never_leaves_a_batch_without_its_file(runner, tmp_path, data_dir, edge):
    """Killed just after the commit, the batch is completed and its file is
    there; killed just before it, the database is as it was and DATA_PATH
    holds the complete copy (never a partial one), which the next
    import numbers its batch above."""
    source = write_csv(tmp_path / "log.csv", GOOD_ROWS)
    before = dump(runner.db_path)
    env = {**os.environ, **{k: v for k, v in runner.env.items() if v is not None}, "CTV_TEST_KILL_AT": edge}
    done = subprocess.run([sys.executable, "-c", _KILLED_AT, "import", str(source)], cwd=APP, env=env, check=False)
    assert done.returncode == -signal.SIGKILL
    conn = db.connect(runner.db_path)
    try:
        batches = [tuple(row) for row in conn.execute("SELECT id, status, stored_file FROM import_batches")]
    finally:
        conn.close()
    if edge == "after":
        assert batches == [(1, "completed", str(data_dir / "batch-000001-log.csv"))]
    else:
        assert batches == [] and dump(runner.db_path) == before
    assert names(data_dir) == ["batch-000001-log.csv"]
    assert (data_dir / "batch-000001-log.csv").read_bytes() == source.read_bytes()
    result = runner("import", source)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("batch 2:")


def test_a_failure_after_the_copy_is_named_removes_it(runner, tmp_path, data_dir, monkeypatch):
    """The copy is named inside the transaction: when the last write before
    the commit fails, the import is rolled back and the named copy goes."""
    source = write_csv(tmp_path / "log.csv", GOOD_ROWS)
    before = dump(runner.db_path)

    def fail(conn):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(db, "_bump_data_version", fail)
    with pytest.raises(sqlite3.OperationalError):
        runner("import", source)
    assert names(data_dir) == []
    assert dump(runner.db_path) == before


# --- the two CSV readers and the two money paths agree --------------------


_cell = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "A1:Acme",
            "2025-01-06",
            "Jan-25",
            "1,000.00",
            '"',
            '""',
            'a"b',
            "x\r\ny",
            "\n",
            "\r",
            "\x1c",
            ",",
            "30",
            "Trade",
        ]
    ),
    st.text(st.sampled_from('ab ,"\r\n\x1c\t'), max_size=6),
)
_row = st.one_of(st.lists(_cell, min_size=15, max_size=15), st.lists(_cell, max_size=17))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_row, max_size=6), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_polars_reads_a_csv_as_the_csv_module_does(rows, newline, raw):
    """Whenever the polars reader takes a file (it declines those it could
    split otherwise), its cells, row numbers and widths are those of
    Python's csv module."""
    import csv
    import io

    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator=newline)
    writer.writerow(importer.NAMES)
    if raw:  # cells written as they are: quotes in odd places
        buffer.write("".join(",".join(r) + newline for r in rows))
    else:
        writer.writerows(rows)
    text = buffer.getvalue()
    fast = importer._csv_cells_polars(text.encode())
    if fast is None:
        return
    slow = importer._cells_from_rows(importer._csv_rows_python(text))
    wide = slow.get_column("width") == importer.WIDTH
    assert fast.get_column("row").to_list() == slow.get_column("row").to_list()
    assert fast.get_column("width").to_list() == slow.get_column("width").to_list()
    assert fast.filter(wide).rows() == slow.filter(wide).rows()


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.integers(-(10**12), 10**12).map(lambda c: f"{c / 100:.2f}"),
        st.integers(-(10**12), 10**12).map(lambda c: f"{c / 10:.1f}"),
        st.integers(-(10**12), 10**12).map(str),
        st.from_regex(r"-?[0-9]{1,11}(\.[0-9]{0,4})?", fullmatch=True),
        st.text(st.sampled_from("0123456789.,-$() e+_"), max_size=12),
    )
)
def test_money_in_bulk_is_parse_money(text):
    import polars as pl

    cents, bad = importer._money(pl.Series([text], dtype=pl.String))
    try:
        expected = importer.parse_money(text)
    except ValueError:
        assert bad is not None and bad[0]
        return
    assert (bad is None or not bad[0]) and cents[0] == expected


def test_python_whitespace_is_all_there():
    import sys

    assert set(importer._PY_SPACE) == {c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace()}
