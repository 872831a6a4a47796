"""Revenue and spot counts by language and by market."""

from __future__ import annotations

from ...db import query
from ...months import year_months
from ..charts import share_chart
from ..formatting import pct
from .common import Column, Table, cached, measure_arg, respond, year_arg, years_with_data

# From the report totals (db.spot_totals).
LANGUAGE_MARKET_SQL = """
SELECT COALESCE(language_code, '(none)') AS language,
       COALESCE(market, '(none)') AS market,
       SUM(spots) AS spots,
       SUM(CASE WHEN :measure = 'net' THEN net ELSE gross END) AS revenue
FROM spot_totals
WHERE broadcast_month BETWEEN :first AND :last
  AND revenue_type <> 'Trade'
GROUP BY language, market
"""

# The same filters, per language and broadcast month: the chart's figures.
LANGUAGE_MONTH_SQL = """
SELECT COALESCE(language_code, '(none)') AS language,
       broadcast_month AS month,
       SUM(CASE WHEN :measure = 'net' THEN net ELSE gross END) AS revenue
FROM spot_totals
WHERE broadcast_month BETWEEN :first AND :last
  AND revenue_type <> 'Trade'
GROUP BY language, month
"""


def _by(rows, key: str) -> list[list]:
    totals: dict[str, list[int]] = {}
    for row in rows:
        entry = totals.setdefault(row[key], [0, 0])
        entry[0] += row["spots"]
        entry[1] += row["revenue"]
    return sorted(([name, spots, revenue] for name, (spots, revenue) in totals.items()), key=lambda r: (-r[2], r[0]))


def view():
    years = years_with_data()
    year = year_arg(years)
    measure = measure_arg()
    return respond(
        "languages",
        "Language and market",
        **cached("languages", (year, measure), lambda: _compute(years, year, measure)),
    )


def _compute(years: list[int], year: int, measure: str) -> dict:
    months = year_months(year)
    rows = query(LANGUAGE_MARKET_SQL, {"first": months[0], "last": months[-1], "measure": measure})
    all_spots = sum(r["spots"] for r in rows)
    all_revenue = sum(r["revenue"] for r in rows)
    tables = []
    for key, title, heading in (("language", "By language", "Language"), ("market", "By market", "Market")):
        table = Table(
            key,
            f"{title}, {year}",
            [
                Column(key, heading),
                Column("spots", "Spots", "int"),
                Column("revenue", f"{measure.capitalize()} revenue", "money"),
                Column("share", "Share of revenue", "pct"),
                Column("average", "Average per spot", "money"),
            ],
        )
        for name, spots, revenue in _by(rows, key):
            table.rows.append(
                [name, spots, revenue, pct(revenue, all_revenue), round(revenue / spots) if spots else None]
            )
        table.total = [
            "Total",
            all_spots,
            all_revenue,
            pct(all_revenue, all_revenue),
            round(all_revenue / all_spots) if all_spots else None,
        ]
        tables.append(table)
    markets = [r[0] for r in _by(rows, "market")]
    grid = Table(
        "grid",
        f"{measure.capitalize()} revenue by language and market, {year}",
        [Column("language", "Language"), *(Column(m, m, "money") for m in markets), Column("total", "Total", "money")],
    )
    cells = {(r["language"], r["market"]): r["revenue"] for r in rows}
    for language, _, revenue in _by(rows, "language"):
        grid.rows.append([language, *(cells.get((language, m), 0) for m in markets), revenue])
    grid.total = ["Total", *(r[2] for r in _by(rows, "market")), all_revenue]
    tables.append(grid)
    tables[0].note = "Whole dollars. Trade is excluded from revenue and from the spot counts."
    by_month = query(LANGUAGE_MONTH_SQL, {"first": months[0], "last": months[-1], "measure": measure})
    chart = share_chart(
        months,
        [(r["language"], r["month"], r["revenue"]) for r in by_month],
        title=f"Language share of {measure} revenue by month, {year}",
        caption=f"Each bar is a broadcast month of {year}, split by language ({measure}, Trade excluded).",
    )
    return dict(
        tables=tables,
        filters={"year": year, "measure": measure},
        messages=[],
        years=sorted(set(years) | {year}),
        chart=chart,
    )
