"""The report totals (spot_totals) and the report cache.

A report computed once is served from a per-process cache keyed on the
database's data version; every write that changes what a report shows
(import, import-budget, close-month, reopen-month, from the CLI in another
connection or from the web) must make the next request compute it again.
"""

import sqlite3

import pytest

from src import db
from src.web.reports import revenue
from src.web.reports.common import ReportCache

from .conftest import Cli, csrf_token
from .test_cli import write_csv
from .test_reports import table_csv

TOTALS_FROM_SPOTS = """
SELECT broadcast_month, customer_id, sales_person, revenue_type, market,
       language_code, MAX(import_batch_id), COUNT(*), SUM(gross_rate),
       SUM(station_net)
FROM spots
GROUP BY 1, 2, 3, 4, 5, 6
"""


def assert_totals_match_spots(path):
    conn = sqlite3.connect(path)
    try:
        expected = sorted(conn.execute(TOTALS_FROM_SPOTS).fetchall(), key=repr)
        stored = sorted(conn.execute("SELECT * FROM spot_totals").fetchall(), key=repr)
    finally:
        conn.close()
    assert stored == expected


@pytest.fixture
def cli(db_path, data_dir):
    return Cli(
        {
            "DATABASE_PATH": str(db_path),
            "DATA_PATH": str(data_dir),
            "SECRET_KEY": None,
            "SECRET_KEY_FILE": None,
            "CREDENTIALS_DIRECTORY": None,
            "CTV_BOOKEDBIZ_ENV": None,
        }
    )


def revenue_2025(client) -> list[str]:
    """The total row of the 2025 revenue CSV."""
    return table_csv(client, "/reports/revenue?year=2025&format=csv")[-1]


def month_row(client, month: str) -> list[str]:
    rows = table_csv(client, "/reports/months?format=csv")
    return {r[0]: r for r in rows[1:]}[month]


def test_repeated_report_comes_from_the_cache(viewer, app, monkeypatch):
    first = viewer.get("/reports/revenue?year=2025").data
    assert len(app.extensions["ctv_report_cache"]) > 0

    def no_queries(*args, **kwargs):
        raise AssertionError("the revenue report queried the database")

    monkeypatch.setattr(revenue, "query", no_queries)
    again = viewer.get("/reports/revenue?year=2025").data
    assert again.replace(b"\n", b"") == first.replace(b"\n", b"")
    # another filter is another entry, computed (and here: refused)
    with pytest.raises(AssertionError, match="queried"):
        viewer.get("/reports/revenue?year=2025&measure=net")


def test_import_invalidates_the_cache(viewer, cli, tmp_path, db_path):
    assert revenue_2025(viewer)[-1] == "4500"
    assert month_row(viewer, "Jan 2025")[3:6] == ["5", "1800", "1560"]
    source = write_csv(
        tmp_path / "jan.csv",
        ["A1:Acme Foods,2025-01-06,Jan-25,Acme Foods,A1,Alice,Internal Ad Sales,COM,M,LAX,30,100.00,85.00,,K1"],
    )
    assert cli("import", source).exit_code == 0
    # Jan-25 is now the one 100-dollar spot: 100 + Feb 2000 + Mar 700
    assert revenue_2025(viewer)[-1] == "2800"
    assert month_row(viewer, "Jan 2025")[3:6] == ["1", "100", "85"]
    assert month_row(viewer, "Jan 2025")[8] == "jan.csv"
    assert_totals_match_spots(db_path)


def test_import_budget_invalidates_the_cache(viewer, cli, tmp_path):
    url = "/reports/ae?year=2025&format=csv&table=summary"
    before = {r[0]: r for r in table_csv(viewer, url)[1:]}
    assert before["Alice"][2] == "4000"
    budget = tmp_path / "budget.csv"
    budget.write_text("ae,month,amount\nAlice,Jan-25,5000\n")
    assert cli("import-budget", budget).exit_code == 0
    after = {r[0]: r for r in table_csv(viewer, url)[1:]}
    assert after["Alice"][2] == "7000"  # 5000 (Jan) + 2000 (Feb)


def test_close_and_reopen_from_the_cli_invalidate_the_cache(viewer, cli):
    assert month_row(viewer, "Jan 2025")[1] == "open"
    assert cli("close-month", "Jan-25").exit_code == 0
    assert month_row(viewer, "Jan 2025")[1] == "closed"
    assert cli("reopen-month", "Jan-25").exit_code == 0
    assert month_row(viewer, "Jan 2025")[1] == "open"


def test_close_and_reopen_from_the_web_invalidate_the_cache(admin):
    assert month_row(admin, "Feb 2025")[1] == "open"
    token = csrf_token(admin, "/reports/months")
    admin.post("/reports/months/2025-02/close", data={"csrf_token": token})
    assert month_row(admin, "Feb 2025")[1] == "closed"
    admin.post("/reports/months/2025-02/reopen", data={"csrf_token": token})
    assert month_row(admin, "Feb 2025")[1] == "open"


def test_a_write_in_another_process_is_seen_by_every_report(viewer, cli, tmp_path):
    urls = ["/reports/revenue?year=2025", "/reports/ae?year=2025", "/reports/languages?year=2025", "/reports/months"]
    before = [viewer.get(u).data for u in urls]
    source = write_csv(
        tmp_path / "mar.csv",
        ["Direct:Bright Dental,2025-03-10,Mar-25,Bright Dental,,Bob,Direct Response,COM,C,NYC,30,1234.00,1200.00,0,K2"],
    )
    assert cli("import", source).exit_code == 0
    after = [viewer.get(u).data for u in urls]
    for url, old, new in zip(urls, before, after, strict=True):
        assert b"1,234" not in old and b"1,234" in new, url


def test_every_write_bumps_the_data_version(db_path):
    conn = db.connect(db_path)
    versions = [db.data_version(conn)]
    db.replace_spots(
        conn,
        [
            (
                "X:Y",
                "2025-04-01",
                "2025-04",
                "Y",
                "X",
                "Alice",
                "Internal Ad Sales",
                "COM",
                "M",
                "LAX",
                30,
                100,
                85,
                0,
                "K9",
            )
        ],
        source_file="a.csv",
    )
    versions.append(db.data_version(conn))
    db.replace_budgets(conn, [("Alice", "2025-04", 100)], source_file="b.csv")
    versions.append(db.data_version(conn))
    db.close_month(conn, "2025-04", "test")
    versions.append(db.data_version(conn))
    db.reopen_month(conn, "2025-04")
    versions.append(db.data_version(conn))
    conn.close()
    assert versions == sorted(set(versions)) and len(versions) == 5


def test_totals_follow_imports_and_closed_months(runner, tmp_path):
    rows = [
        "A1:Acme Foods,2025-01-06,Jan-25,Acme Foods,A1,Alice,Internal Ad Sales,COM,M,LAX,30,1000.00,850.00,,K1",
        "A1:acme foods,2025-02-06,Feb-25,acme foods,A1,,Trade,COM,,,30,50,50,,K1",
        "Direct:Bright Dental,2025-02-03,Feb-25,Bright Dental,,Bob,Direct Response,COM,C,NYC,60,700,650,0,K2",
    ]
    assert runner("import", write_csv(tmp_path / "a.csv", rows)).exit_code == 0
    assert_totals_match_spots(runner.db_path)
    assert runner("close-month", "Feb-25").exit_code == 0
    again = rows + ["Direct:Bright Dental,2025-03-03,Mar-25,Bright Dental,,Bob,Direct Response,COM,C,NYC,60,70,65,0,K2"]
    result = runner("import", write_csv(tmp_path / "b.csv", again))
    assert "skipped 2 rows of closed month(s) Feb 2025" in result.output
    assert_totals_match_spots(runner.db_path)
    assert (
        runner("demo-data", "--spots", 500, "--seed", 2, "--start", "Jan-25", "--months", 3, "--force").exit_code == 0
    )
    assert_totals_match_spots(runner.db_path)


def test_upgrade_to_version_3_builds_the_totals(tmp_path):
    path = tmp_path / "v2.db"
    conn = db.connect(path, create=True)
    for version in (1, 2):
        conn.executescript(f"BEGIN; {db.MIGRATIONS[version - 1]} PRAGMA user_version = {version}; COMMIT;")
    conn.execute("INSERT INTO customers (name) VALUES ('Acme')")
    conn.execute("INSERT INTO import_batches (kind, source_file, started_at) VALUES ('import', 'x.csv', 'now')")
    conn.executemany(
        "INSERT INTO spots (bill_code, air_date, broadcast_month,"
        " customer_id, sales_person, revenue_type, market, language_code,"
        " gross_rate, station_net, broker_fees, source_file,"
        " import_batch_id) VALUES ('A:Acme', '2025-01-06', ?, 1, ?, ?,"
        " 'LAX', NULL, ?, ?, 0, 'x.csv', 1)",
        [
            ("2025-01", "Alice", "Internal Ad Sales", 100, 85),
            ("2025-01", "Alice", "Internal Ad Sales", 200, 170),
            ("2025-01", None, "Trade", 50, 50),
            ("2025-02", "Alice", "Internal Ad Sales", 300, 255),
        ],
    )
    assert db.upgrade(conn) == (2, db.LATEST_VERSION)
    conn.close()
    assert_totals_match_spots(path)
    conn = db.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM spot_totals").fetchone()[0] == 3
    assert db.data_version(conn) == 1
    conn.close()


def test_cache_serves_only_the_version_it_was_computed_for():
    cache = ReportCache(max_entries=2)
    calls = []

    def compute(value):
        def run():
            calls.append(value)
            return value

        return run

    assert cache.get_or_compute(1, "a", compute("a1")) == "a1"
    assert cache.get_or_compute(1, "a", compute("never")) == "a1"
    assert cache.get_or_compute(2, "a", compute("a2")) == "a2"
    # any other version, even an older one (a request that began reading
    # before a write committed), drops every entry and computes afresh
    assert cache.get_or_compute(1, "a", compute("a1 again")) == "a1 again"
    assert cache.get_or_compute(1, "b", compute("b1")) == "b1"
    assert cache.get_or_compute(1, "c", compute("c1")) == "c1"
    assert len(cache) == 2  # bounded
    assert calls == ["a1", "a2", "a1 again", "b1", "c1"]
