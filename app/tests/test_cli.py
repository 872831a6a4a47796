import csv
import sqlite3

import pytest
from werkzeug.security import check_password_hash

from src import db

from .conftest import Cli, dump

HEADER = (
    "bill_code,air_date,broadcast_month,customer,agency,sales_person,"
    "revenue_type,spot_type,language,market,length,gross_rate,"
    "station_net,broker_fees,contract"
)
GOOD_ROWS = [
    "A1:Acme Foods,2025-01-06,Jan-25,Acme Foods,A1,Alice,Internal Ad Sales,COM,M,LAX,30,1000.00,850.00,,K1",
    'A1:Acme Foods,01/07/2025,Jan-25,,A1,Alice,Internal Ad Sales,COM,V,SFO,0:15,"1,500.50","$1,275.43",0,K1',
    "Direct:Bright Dental,2025-02-03,Feb-25,Bright  Dental,,Bob,Trade,COM,C,NYC,60,700,700,0,K2",
    "Direct:Bright Dental,2025-02-04,Feb-25,Bright Dental,,Bob,Direct Response,COM,C,NYC,60,(100.00),-95,0,K2",
]


def write_csv(path, rows, header=HEADER):
    path.write_text("\n".join([header, *rows]) + "\n" if header is not None else "\n".join(rows))
    return path


def totals(path):
    conn = db.connect(path)
    try:
        return [
            tuple(row)
            for row in conn.execute(
                "SELECT broadcast_month, COUNT(*), SUM(gross_rate),"
                " SUM(station_net) FROM spots GROUP BY broadcast_month"
                " ORDER BY broadcast_month"
            )
        ]
    finally:
        conn.close()


# --- db ----------------------------------------------------------------------


def test_db_upgrade_is_idempotent(runner):
    result = runner("db", "upgrade")
    assert result.exit_code == 0
    assert result.output == f"schema up to date at version {db.LATEST_VERSION}\n"
    assert runner("db", "version").output == f"{db.LATEST_VERSION}\n"


def test_db_upgrade_creates_file_and_needs_no_secret(tmp_path):
    path = tmp_path / "new.db"
    cli = Cli(
        {
            "DATABASE_PATH": str(path),
            "SECRET_KEY": None,
            "SECRET_KEY_FILE": None,
            "CREDENTIALS_DIRECTORY": None,
            "CTV_BOOKEDBIZ_ENV": None,
        }
    )
    result = cli("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert result.output == (f"schema upgraded from version 0 to {db.LATEST_VERSION}\n")
    conn = db.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    conn.close()


def test_cli_without_database_path_names_it(tmp_path):
    cli = Cli({"DATABASE_PATH": None, "CTV_BOOKEDBIZ_ENV": None})
    result = cli("db", "upgrade")
    assert result.exit_code == 1
    assert "DATABASE_PATH is not set" in result.output


def test_commands_refuse_an_unmigrated_database(tmp_path):
    path = tmp_path / "bare.db"
    db.connect(path, create=True).close()
    cli = Cli({"DATABASE_PATH": str(path)})
    result = cli("users", "list")
    assert result.exit_code == 1
    assert "db upgrade" in result.output


def test_migration_rolls_back_as_a_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(db, "MIGRATIONS", db.MIGRATIONS + ("CREATE TABLE extra (x); INSERT INTO nowhere VALUES (1);",))
    monkeypatch.setattr(db, "LATEST_VERSION", len(db.MIGRATIONS))
    conn = db.connect(tmp_path / "m.db", create=True)
    with pytest.raises(sqlite3.OperationalError):
        db.upgrade(conn)
    assert db.schema_version(conn) == db.LATEST_VERSION - 1
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "extra" not in tables and "spots" in tables
    conn.close()


# --- users -------------------------------------------------------------------


def test_users_add_reads_password_from_stdin(runner):
    result = runner("users", "add", "carol", "--role", "management", input="a long password\n")
    assert result.exit_code == 0, result.output
    conn = db.connect(runner.db_path)
    row = db.get_user(conn, username="carol")
    conn.close()
    assert row["role"] == "management"
    assert check_password_hash(row["password_hash"], "a long password")
    assert "a long password" not in result.output
    assert runner("users", "list").output == "carol\tmanagement\tactive\n"


def test_users_add_rejects_short_password_and_duplicates(runner):
    result = runner("users", "add", "dan", "--role", "viewer", input="short\n")
    assert result.exit_code == 1 and "at least 8" in result.output
    assert runner("users", "list").output == ""
    runner("users", "add", "dan", "--role", "viewer", input="long enough\n")
    result = runner("users", "add", "dan", "--role", "admin", input="long enough\n")
    assert result.exit_code == 1 and "already exists" in result.output


def test_users_add_rejects_unknown_role(runner):
    result = runner("users", "add", "erin", "--role", "boss", input="x" * 10)
    assert result.exit_code == 2


def test_users_set_password_and_disable(runner):
    runner("users", "add", "fay", "--role", "ae", input="first password\n")
    assert runner("users", "set-password", "fay", input="second password\n").exit_code == 0
    conn = db.connect(runner.db_path)
    assert check_password_hash(db.get_user(conn, username="fay")["password_hash"], "second password")
    conn.close()
    assert runner("users", "set-role", "fay", "--role", "viewer").output == ("fay is now viewer\n")
    assert runner("users", "disable", "fay").exit_code == 0
    assert runner("users", "list").output == "fay\tviewer\tdisabled\n"
    assert runner("users", "enable", "fay").exit_code == 0
    assert runner("users", "list").output == "fay\tviewer\tactive\n"
    assert runner("users", "disable", "nobody").exit_code == 1


def test_users_unlock_lifts_a_lock_out(runner):
    """Five failed logins lock the user name (whatever its case and spaces
    as typed); ``users unlock`` clears them and the user can log in."""
    from src.web import create_app

    from .conftest import SECRET, login

    runner("users", "add", "gil", "--role", "viewer", input="gil's password\n")
    app = create_app({"TESTING": True, "DATABASE_PATH": str(runner.db_path), "SECRET_KEY": SECRET})
    client = app.test_client()
    for name in ("gil", "Gil", " GIL ", "gil", "gil"):
        assert login(client, name, "wrong password").status_code == 401
    assert login(client, "gil", "gil's password").status_code == 429
    result = runner("users", "unlock", "gil")
    assert result.exit_code == 0, result.output
    assert result.output == "cleared 5 failed login(s) of gil\n"
    assert login(client, "gil", "gil's password").status_code == 302
    assert runner("users", "unlock", "gil").output == ("cleared 0 failed login(s) of gil\n")


def test_users_unlock_of_an_unknown_user(runner):
    runner("users", "add", "hal", "--role", "viewer", input="long enough\n")
    conn = db.connect(runner.db_path)
    db.begin_login_attempt(conn, "nobody", "192.0.2.1", now=1e9, window=900, per_user=5, per_address=20)
    before = dump(runner.db_path)
    conn.close()
    for name in ("nobody", "HAL", ""):
        result = runner("users", "unlock", name)
        assert result.exit_code == 1, name
        assert result.output == f"Error: no user {name!r}\n"
    assert dump(runner.db_path) == before


# --- import ------------------------------------------------------------------


def test_import_csv(runner, tmp_path, data_dir):
    source = write_csv(tmp_path / "log.csv", GOOD_ROWS)
    result = runner("import", source)
    assert result.exit_code == 0, result.output
    assert "imported 4 spots for Jan 2025, Feb 2025" in result.output
    assert totals(runner.db_path) == [
        ("2025-01", 2, 100000 + 150050, 85000 + 127543),
        ("2025-02", 2, 70000 - 10000, 70000 - 9500),
    ]
    kept = list(data_dir.iterdir())
    assert len(kept) == 1 and kept[0].name.endswith("-log.csv")
    assert kept[0].read_bytes() == source.read_bytes()
    conn = db.connect(runner.db_path)
    spot = conn.execute(
        "SELECT * FROM spots s JOIN customers c ON c.id = s.customer_id WHERE length_seconds = 15"
    ).fetchone()
    assert spot["air_date"] == "2025-01-07"
    assert spot["name"] == "Acme Foods"  # taken from the bill code
    names = [r[0] for r in conn.execute("SELECT name FROM customers")]
    assert sorted(names) == ["Acme Foods", "Bright Dental"]
    batch = conn.execute("SELECT * FROM import_batches").fetchone()
    assert (batch["row_count"], batch["months"], batch["status"]) == (4, "2025-01,2025-02", "completed")
    conn.close()


def test_import_needs_data_path(runner, tmp_path):
    runner.env = {**runner.env, "DATA_PATH": None}
    result = runner("import", write_csv(tmp_path / "log.csv", GOOD_ROWS))
    assert result.exit_code == 1
    assert "DATA_PATH is not set" in result.output


def test_reimport_gives_the_same_totals(runner, tmp_path):
    source = write_csv(tmp_path / "log.csv", GOOD_ROWS)
    runner("import", source)
    first = totals(runner.db_path)
    assert runner("import", source).exit_code == 0
    assert totals(runner.db_path) == first


def test_import_replaces_only_the_months_in_the_file(runner, tmp_path):
    runner("import", write_csv(tmp_path / "a.csv", GOOD_ROWS))
    update = [GOOD_ROWS[0].replace("1000.00", "2000.00")]
    runner("import", write_csv(tmp_path / "b.csv", update))
    assert totals(runner.db_path) == [
        ("2025-01", 1, 200000, 85000),
        ("2025-02", 2, 60000, 60500),
    ]


def test_closed_month_survives_reimport(runner, tmp_path):
    runner("import", write_csv(tmp_path / "a.csv", GOOD_ROWS))
    result = runner("close-month", "Jan-25")
    assert result.output == "closed Jan 2025\n"
    assert runner("close-month", "Jan-25").output == "Jan 2025 was already closed\n"
    before = totals(runner.db_path)
    changed = [r.replace("1000.00", "5.00").replace(",700,700,", ",1,1,") for r in GOOD_ROWS]
    result = runner("import", write_csv(tmp_path / "b.csv", changed))
    assert result.exit_code == 0
    assert "skipped 2 rows of closed month(s) Jan 2025" in result.output
    after = totals(runner.db_path)
    assert after[0] == before[0]  # Jan-25 untouched
    assert after[1] != before[1]  # Feb-25 replaced


def test_close_month_rejects_bad_month(runner):
    result = runner("close-month", "January")
    assert result.exit_code == 2 and "not a broadcast month" in result.output


BAD_FILES = {
    "bad date": [GOOD_ROWS[0].replace("2025-01-06", "2025-13-06")],
    "bad month": [GOOD_ROWS[0].replace("Jan-25", "Jam-25")],
    "non-numeric money": [GOOD_ROWS[0].replace("1000.00", "ten")],
    "wrong column count": [GOOD_ROWS[0] + ",extra"],
    "too few columns": ["A1:Acme Foods,2025-01-06,Jan-25"],
    "empty revenue type": [GOOD_ROWS[0].replace("Internal Ad Sales", "")],
    "not a number length": [GOOD_ROWS[0].replace(",30,", ",thirty,")],
    "infinite money": [GOOD_ROWS[0].replace("1000.00", "inf")],
}


@pytest.mark.parametrize("problem", sorted(BAD_FILES))
def test_bad_rows_change_nothing(runner, tmp_path, data_dir, problem):
    runner("import", write_csv(tmp_path / "good.csv", GOOD_ROWS))
    before = dump(runner.db_path)
    kept = sorted(data_dir.iterdir())
    # one bad row among good ones: the whole file is refused
    rows = GOOD_ROWS[1:] + BAD_FILES[problem]
    result = runner("import", write_csv(tmp_path / "bad.csv", rows))
    assert result.exit_code == 1
    assert "row 5:" in result.output  # header is row 1
    assert "nothing was imported" in result.output
    assert dump(runner.db_path) == before
    assert sorted(data_dir.iterdir()) == kept


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "the file is empty"),
        (HEADER + "\n", "no data rows"),
        ("bill_code,air_date\nx,y\n", "missing column(s)"),
        (HEADER + ",colour\n", "unknown column(s) colour"),
    ],
)
def test_empty_or_malformed_file_changes_nothing(runner, tmp_path, content, message):
    before = dump(runner.db_path)
    path = tmp_path / "bad.csv"
    path.write_text(content)
    result = runner("import", path)
    assert result.exit_code == 1
    assert message in result.output
    assert dump(runner.db_path) == before


def test_every_bad_row_is_listed(runner, tmp_path):
    rows = [
        GOOD_ROWS[0].replace("2025-01-06", "yesterday"),
        GOOD_ROWS[1],
        GOOD_ROWS[0].replace("Jan-25", "13-25").replace("850.00", "abc"),
    ]
    result = runner("import", write_csv(tmp_path / "bad.csv", rows))
    assert "row 2: air_date 'yesterday' is not a date" in result.output
    assert "row 4: broadcast_month '13-25' is not a month" in result.output
    assert "row 4: station_net 'abc' is not an amount" in result.output
    assert "3 problem(s)" in result.output


def test_unsupported_file_type(runner, tmp_path):
    path = tmp_path / "log.txt"
    path.write_text(HEADER)
    result = runner("import", path)
    assert result.exit_code == 1 and "use .csv or .xlsx" in result.output


def test_csv_columns_in_any_order(runner, tmp_path):
    rows = list(csv.reader([HEADER, *GOOD_ROWS]))
    reordered = [list(reversed(r)) for r in rows]
    path = tmp_path / "reversed.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(reordered)
    assert runner("import", path).exit_code == 0
    assert len(totals(runner.db_path)) == 2


def test_xlsx_import(runner, tmp_path):
    from datetime import date, datetime

    from openpyxl import Workbook

    from src.importer import HEADINGS

    book = Workbook()
    sheet = book.active
    sheet.append(HEADINGS)
    sheet.append(
        [
            "A1:Acme Foods",
            datetime(2025, 1, 6),
            "Jan-25",
            "Acme Foods",
            "A1",
            "Alice",
            "Internal Ad Sales",
            "COM",
            "M",
            "LAX",
            30,
            1000.0,
            850,
            None,
            "K1",
        ]
    )
    sheet.append(
        [
            "A1:Acme Foods",
            date(2025, 1, 7),
            date(2025, 1, 1),
            "Acme Foods",
            "A1",
            "Alice",
            "trade",
            "COM",
            "M",
            "LAX",
            "00:00:30",
            99.99,
            99.99,
            0,
            "K1",
        ]
    )
    path = tmp_path / "Commercial Log.xlsx"
    book.save(path)
    result = runner("import", path)
    assert result.exit_code == 0, result.output
    conn = db.connect(runner.db_path)
    rows = conn.execute(
        "SELECT air_date, revenue_type, length_seconds, gross_rate FROM spots ORDER BY air_date"
    ).fetchall()
    conn.close()
    assert [tuple(r) for r in rows] == [
        ("2025-01-06", "Internal Ad Sales", 30, 100000),
        ("2025-01-07", "Trade", 30, 9999),
    ]


def test_xlsx_bad_row_changes_nothing(runner, tmp_path):
    from openpyxl import Workbook

    from src.importer import HEADINGS

    book = Workbook()
    sheet = book.active
    sheet.append(HEADINGS)
    sheet.append(
        [
            "A1:Acme Foods",
            "not a date",
            "Jan-25",
            "Acme Foods",
            "A1",
            "Alice",
            "Internal Ad Sales",
            "COM",
            "M",
            "LAX",
            30,
            1000.0,
            850,
            0,
            "K1",
        ]
    )
    path = tmp_path / "log.xlsx"
    book.save(path)
    before = dump(runner.db_path)
    result = runner("import", path)
    assert result.exit_code == 1 and "row 2: air_date" in result.output
    assert dump(runner.db_path) == before


# --- budgets -----------------------------------------------------------------


def test_import_budget(runner, tmp_path):
    path = tmp_path / "budget.csv"
    path.write_text('ae,month,amount\nAlice,Jan-25,"2,000"\nBob,Feb-25,500\n')
    result = runner("import-budget", path)
    assert result.exit_code == 0, result.output
    path.write_text("ae,month,amount\nAlice,Jan-25,3000\n")
    runner("import-budget", path)
    conn = db.connect(runner.db_path)
    rows = conn.execute("SELECT sales_person, broadcast_month, amount FROM budgets ORDER BY 1").fetchall()
    conn.close()
    assert [tuple(r) for r in rows] == [("Alice", "2025-01", 300000), ("Bob", "2025-02", 50000)]


def test_bad_budget_changes_nothing(runner, tmp_path):
    path = tmp_path / "budget.csv"
    path.write_text("ae,month,amount\nAlice,Jan-25,lots\nAlice,Jan-25,1\n")
    before = dump(runner.db_path)
    result = runner("import-budget", path)
    assert result.exit_code == 1
    assert "row 2: amount 'lots'" in result.output
    assert dump(runner.db_path) == before


# --- demo data ---------------------------------------------------------------


def test_demo_data_is_deterministic_and_realistic(runner, tmp_path):
    result = runner("demo-data", "--spots", 3000, "--seed", 7, "--start", "Jan-24", "--export", tmp_path / "demo.csv")
    assert result.exit_code == 0, result.output
    first = totals(runner.db_path)
    conn = db.connect(runner.db_path)
    counts = conn.execute(
        "SELECT COUNT(DISTINCT customer_id), COUNT(DISTINCT sales_person),"
        " COUNT(DISTINCT language_code), COUNT(DISTINCT market),"
        " COUNT(DISTINCT broadcast_month),"
        " SUM(revenue_type = 'Trade') FROM spots"
    ).fetchone()
    budgets = conn.execute("SELECT COUNT(*) FROM budgets").fetchone()[0]
    conn.close()
    assert counts[0] >= 90 and counts[1] == 8 and counts[2] >= 5
    assert counts[3] >= 5 and counts[4] == 24 and counts[5] > 0
    assert budgets == 8 * 24
    # the same seed again gives the same data
    runner("demo-data", "--spots", 3000, "--seed", 7, "--start", "Jan-24")
    assert totals(runner.db_path) == first
    # and importing the exported file gives the same totals too
    assert runner("import", tmp_path / "demo.csv").exit_code == 0
    assert totals(runner.db_path) == first
    # another seed differs
    runner("demo-data", "--spots", 3000, "--seed", 8, "--start", "Jan-24", "--force")
    assert totals(runner.db_path) != first


def test_demo_data_does_not_replace_real_imports_unasked(runner, tmp_path):
    runner("import", write_csv(tmp_path / "log.csv", GOOD_ROWS))
    before = dump(runner.db_path)
    result = runner("demo-data", "--spots", 100, "--seed", 1, "--start", "Jan-25", "--months", 2)
    assert result.exit_code == 1 and "--force" in result.output
    assert dump(runner.db_path) == before


def test_demo_export_xlsx_round_trip(runner, tmp_path):
    path = tmp_path / "demo.xlsx"
    result = runner(
        "demo-data", "--spots", 300, "--seed", 3, "--start", "Jan-25", "--months", 3, "--export", path, "--no-db"
    )
    assert result.exit_code == 0, result.output
    assert totals(runner.db_path) == []
    assert runner("import", path).exit_code == 0
    via_file = totals(runner.db_path)
    runner("demo-data", "--spots", 300, "--seed", 3, "--start", "Jan-25", "--months", 3, "--force")
    assert totals(runner.db_path) == via_file


def test_batches_lists_imports(runner, tmp_path):
    runner("import", write_csv(tmp_path / "log.csv", GOOD_ROWS))
    runner("close-month", "Feb-25")
    runner("import", write_csv(tmp_path / "log.csv", GOOD_ROWS))
    lines = runner("batches").output.splitlines()
    assert len(lines) == 2
    newest = lines[0].split("\t")
    assert newest[:3] == ["2", "import", "completed"]
    assert newest[4:7] == ["2", "Jan 2025", "skipped Feb 2025"]
    assert newest[7].endswith("log.csv")


def test_csv_that_is_neither_utf8_nor_windows_1252(runner, tmp_path, data_dir):
    # 0x81 is undefined in Windows-1252; 0xE7 alone is not UTF-8
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        (HEADER + "\n" + GOOD_ROWS[0] + "\n").encode()
        + GOOD_ROWS[0].replace(",Acme Foods,", ",\xe7cme Foods,").encode("latin-1")
        + b"\n"
        + GOOD_ROWS[3].replace("Bob", "B\x81b").encode("latin-1")
        + b"\n"
    )
    before = dump(runner.db_path)
    result = runner("import", path)
    assert result.exit_code == 1
    assert (
        "is neither UTF-8 nor Windows-1252 text: as UTF-8, row 3, "
        "column 4 (customer) has byte 0xE7; as Windows-1252, row 4, "
        "column 6 (sales_person) has byte 0x81"
    ) in result.output
    assert "nothing was imported" in result.output
    assert dump(runner.db_path) == before
    assert list(data_dir.iterdir()) == []


def test_import_check_writes_nothing(runner, tmp_path, data_dir):
    runner("close-month", "Feb-25")
    before = dump(runner.db_path)
    runner.env = {**runner.env, "DATA_PATH": None}  # not needed to check
    result = runner("import", "--check", write_csv(tmp_path / "log.csv", GOOD_ROWS))
    assert result.exit_code == 0, result.output
    assert result.output.endswith("4 valid spots; an import would replace Jan 2025 and skip closed Feb 2025\n")
    assert dump(runner.db_path) == before
    assert list(data_dir.iterdir()) == []
    bad = runner("import", "--check", write_csv(tmp_path / "bad.csv", [GOOD_ROWS[0].replace("Jan-25", "Jam-25")]))
    assert bad.exit_code == 1 and "row 2: broadcast_month" in bad.output
