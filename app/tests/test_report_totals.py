"""Every total on every report, against one plain SQL query over ``spots``.

The reports read the report totals (``spot_totals``) and add them up in
Python; here the same figures come straight from the spots and budgets, for
random data, and the reports must also agree with each other.  Every cell
of every CSV download is checked for formula text on the way.
"""

import csv
import io
import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from src import db
from src.web import create_app
from src.web.formatting import dollars, pct

from .conftest import SECRET, login, make_database

YEAR = 2025
QUARTERS = ((1, 2, 3), (4, 5, 6), (7, 8, 9), (10, 11, 12))
# A cell a spreadsheet would run as a formula; a plain number is not one.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"-?\d+(\.\d+)?")

# Names a spreadsheet would take for formulas, and ordinary ones.
names = st.sampled_from(["Acme", '=HYPERLINK("http://evil","x")', "+1 Media", "-Dash", "@Home", "\tTab", "Zed"])
aes = st.sampled_from(["Alice", "Bob", "=cmd|' /C calc'!A0", None])
months = st.builds(lambda y, m: f"{y}-{m:02d}", st.sampled_from([YEAR - 1, YEAR]), st.integers(1, 12))
money = st.integers(-50_000, 500_000)
spots = st.lists(
    st.builds(
        lambda customer, month, ae, rtype, lang, market, gross, net: (
            f"B:{customer}",
            f"{month}-15",
            month,
            customer,
            None,
            ae,
            rtype,
            "COM",
            lang,
            market,
            30,
            gross,
            net,
            0,
            None,
        ),
        names,
        months,
        aes,
        st.sampled_from(["Internal Ad Sales", "Direct Response", "Trade"]),
        st.sampled_from(["M", "V", "=1+1", None]),
        st.sampled_from(["LAX", "SFO", '=HYPERLINK("http://evil","x")', None]),
        money,
        money,
    ),
    max_size=25,
)
budgets = st.dictionaries(
    st.tuples(st.sampled_from(["Alice", "Bob", "Carol"]), st.builds(lambda m: f"{YEAR}-{m:02d}", st.integers(1, 12))),
    st.integers(0, 900_000),
    max_size=8,
)


def csv_tables(client, report: str, tables: list[str], query: str = "") -> dict[str, list[list[str]]]:
    """The report's tables as CSV rows; no cell may be formula text."""
    out = {}
    for table in tables:
        response = client.get(f"/reports/{report}?year={YEAR}&format=csv&table={table}{query}")
        assert response.status_code == 200, (report, table)
        rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
        for row in rows:
            for cell in row:
                assert not (cell.startswith(FORMULA_START) and not NUMBER.fullmatch(cell)), (report, cell)
        out[table] = rows
    return out


def money_cell(cents) -> str:
    return str(dollars(cents))


def pct_cell(value) -> str:
    return "" if value is None else f"{value:.1f}"


def change(now: int, before: int) -> str:
    return "" if not before else f"{round((now - before) * 100 / before, 1):.1f}"


class Truth:
    """The figures straight from the spots and budgets tables."""

    def __init__(self, path: Path):
        self.conn = db.connect(path)

    def one(self, sql: str, *params) -> int:
        return self.conn.execute(sql, params).fetchone()[0] or 0

    def revenue(self, first: str, last: str, column="gross_rate", where="1") -> int:
        return self.one(
            f"SELECT SUM({column}) FROM spots WHERE "
            "broadcast_month BETWEEN ? AND ? AND revenue_type <> "
            f"'Trade' AND {where}",
            first,
            last,
        )

    def month(self, year: int, m: int, column="gross_rate") -> int:
        key = f"{year}-{m:02d}"
        return self.revenue(key, key, column)

    def year(self, year: int, column="gross_rate") -> int:
        return self.revenue(f"{year}-01", f"{year}-12", column)

    def budget(self, first: str, last: str) -> int:
        return self.one("SELECT SUM(amount) FROM budgets WHERE broadcast_month BETWEEN ? AND ?", first, last)


def check_reports(path: Path, client) -> None:
    truth = Truth(path)
    booked = truth.year(YEAR)
    prior = truth.year(YEAR - 1)
    budget = truth.budget(f"{YEAR}-01", f"{YEAR}-12")

    # Revenue by customer, gross and net: the Total row month by month.
    for measure, column in (("gross", "gross_rate"), ("net", "station_net")):
        rows = csv_tables(client, "revenue", ["customers"], f"&measure={measure}")["customers"]
        assert rows[-1] == [
            "Total",
            *(money_cell(truth.month(YEAR, m, column)) for m in range(1, 13)),
            money_cell(truth.year(YEAR, column)),
        ], measure

    # AE performance: every Total row.
    ae = csv_tables(client, "ae", ["summary", "quarters", "yoy", "months", "pacing"])
    if ae["summary"][1:]:
        assert ae["summary"][-1] == [
            "Total",
            money_cell(booked),
            money_cell(budget),
            pct_cell(pct(booked, budget)),
            money_cell(prior),
            change(booked, prior),
        ]
        quarter_cells, yoy_cells = [], []
        for q in QUARTERS:
            first, last = f"{YEAR}-{q[0]:02d}", f"{YEAR}-{q[-1]:02d}"
            got = truth.revenue(first, last)
            goal = truth.budget(first, last)
            before = truth.revenue(f"{YEAR - 1}-{q[0]:02d}", f"{YEAR - 1}-{q[-1]:02d}")
            quarter_cells += [money_cell(got), money_cell(goal), pct_cell(pct(got, goal))]
            yoy_cells += [money_cell(got), money_cell(before), change(got, before)]
        assert ae["quarters"][-1] == ["Total", *quarter_cells]
        assert ae["yoy"][-1] == ["Total", *yoy_cells]
        assert ae["months"][-1] == [
            "Total",
            *(money_cell(truth.month(YEAR, m)) for m in range(1, 13)),
            money_cell(booked),
        ]
        assert ae["pacing"][-1] == [
            "Total",
            *(
                pct_cell(pct(truth.month(YEAR, m), truth.budget(f"{YEAR}-{m:02d}", f"{YEAR}-{m:02d}")))
                for m in range(1, 13)
            ),
            pct_cell(pct(booked, budget)),
        ]
    else:
        assert booked == prior == budget == 0

    # Language and market: totals, and the grid's totals by market.
    lang = csv_tables(client, "languages", ["language", "market", "grid"])
    spots_in_year = truth.one(
        "SELECT COUNT(*) FROM spots WHERE broadcast_month BETWEEN ? AND ? AND revenue_type <> 'Trade'",
        f"{YEAR}-01",
        f"{YEAR}-12",
    )
    for table in ("language", "market"):
        assert lang[table][-1][:3] == ["Total", str(spots_in_year), money_cell(booked)]
    grid = lang["grid"]
    for market, cell in zip(grid[0][1:-1], grid[-1][1:-1], strict=True):
        market = market[1:] if market.startswith("'") else market
        where = "market IS NULL" if market == "(none)" else "market = " + db_literal(market)
        assert cell == money_cell(truth.revenue(f"{YEAR}-01", f"{YEAR}-12", where=where)), market
    assert grid[-1][-1] == money_cell(booked)

    # Month status: every month's figures, and the report agrees with the
    # revenue report's months.
    status = csv_tables(client, "months", ["months"])["months"]
    shown = {row[0]: row for row in status[1:-1]}
    for key, count in truth.conn.execute("SELECT broadcast_month, COUNT(*) FROM spots GROUP BY 1"):
        year, m = int(key[:4]), int(key[5:])
        row = shown.pop(month_name(key))
        assert row[3:6] == [
            str(count),
            money_cell(truth.month(year, m)),
            money_cell(truth.month(year, m, "station_net")),
        ]
    assert not shown
    truth.conn.close()


def db_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def month_name(key: str) -> str:
    from src.months import label

    return label(key)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spots=spots, budgets=budgets)
def test_every_total_equals_plain_sql_over_the_spots(spots, budgets):
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "random.db"
        make_database(path, spots=spots, budgets=[(ae, m, amount) for (ae, m), amount in budgets.items()])
        client = create_app({"DATABASE_PATH": str(path), "SECRET_KEY": SECRET}).test_client()
        assert login(client).status_code == 302
        check_reports(path, client)


def test_ae_total_counts_last_year_of_an_ae_with_nothing_this_year(tmp_path):
    """2024: Alice 100 and Bob 100; 2025: Alice 150.  The Total row says
    200 booked last year and -25%, as the revenue report does."""

    def spot(ae, month, dollars_):
        return (
            f"B:{ae}",
            f"{month}-15",
            month,
            f"{ae} Co",
            None,
            ae,
            "Internal Ad Sales",
            "COM",
            "M",
            "LAX",
            30,
            dollars_ * 100,
            dollars_ * 100,
            0,
            None,
        )

    path = tmp_path / "yoy.db"
    make_database(
        path,
        budgets=[],
        spots=[spot("Alice", "2024-03", 100), spot("Bob", "2024-03", 100), spot("Alice", "2025-03", 150)],
    )
    client = create_app({"DATABASE_PATH": str(path), "SECRET_KEY": SECRET}).test_client()
    login(client)
    tables = csv_tables(client, "ae", ["summary", "yoy"])
    assert tables["summary"][-1] == ["Total", "150", "0", "", "200", "-25.0"]
    assert tables["yoy"][-1][:4] == ["Total", "150", "200", "-25.0"]
    # Bob has a row of his own, so the rows add up to the Total.
    assert ["Bob", "0", "0", "", "100", "-100.0"] in tables["summary"]
    check_reports(path, client)
