"""Revenue by customer and broadcast month for one year."""

from __future__ import annotations

from ...db import query
from ...months import label, year_months
from ..charts import bar_chart
from .common import Column, Table, cached, choice_arg, measure_arg, raw_arg, respond, year_arg, years_with_data

OPTIONS_SQL = """
SELECT DISTINCT sales_person, revenue_type, market
FROM spot_totals
WHERE broadcast_month BETWEEN :first AND :last
  AND revenue_type <> 'Trade'
"""

# From the report totals (db.spot_totals), grouped by customer id first and
# named afterwards.
REVENUE_SQL = """
SELECT c.name AS customer, t.month, t.amount
FROM (
    SELECT customer_id,
           broadcast_month AS month,
           SUM(CASE WHEN :measure = 'net' THEN net ELSE gross END) AS amount
    FROM spot_totals
    WHERE broadcast_month BETWEEN :first AND :last
      AND revenue_type <> 'Trade'
      AND (:ae IS NULL OR sales_person = :ae)
      AND (:revenue_type IS NULL OR revenue_type = :revenue_type)
      AND (:market IS NULL OR market = :market)
    GROUP BY customer_id, broadcast_month
) AS t
JOIN customers AS c ON c.id = t.customer_id
"""

FILTERS = ("ae", "revenue_type", "market")


def view():
    years = years_with_data()
    year = year_arg(years)
    measure = measure_arg()
    report = cached("revenue", (year, measure, *map(raw_arg, FILTERS)), lambda: _compute(years, year, measure))
    return respond("revenue", "Revenue by customer", **report)


def _compute(years: list[int], year: int, measure: str) -> dict:
    messages: list[str] = []
    months = year_months(year)
    span = {"first": months[0], "last": months[-1]}
    options = query(OPTIONS_SQL, span)
    aes = sorted({r["sales_person"] for r in options if r["sales_person"]})
    revenue_types = sorted({r["revenue_type"] for r in options})
    markets = sorted({r["market"] for r in options if r["market"]})
    ae = choice_arg("ae", "account executive", aes, messages)
    revenue_type = choice_arg("revenue_type", "revenue type", revenue_types, messages)
    market = choice_arg("market", "market", markets, messages)

    grid: dict[str, list[int]] = {}
    column = {m: i for i, m in enumerate(months)}
    for row in query(
        REVENUE_SQL, {**span, "measure": measure, "ae": ae, "revenue_type": revenue_type, "market": market}
    ):
        grid.setdefault(row["customer"], [0] * 12)[column[row["month"]]] = row["amount"]
    month_totals = [sum(values[i] for values in grid.values()) for i in range(12)]
    rows = sorted(([name, *values, sum(values)] for name, values in grid.items()), key=lambda r: (-r[-1], r[0]))
    table = Table(
        key="customers",
        title=f"{measure.capitalize()} revenue by customer, {year}",
        columns=[
            Column("customer", "Customer"),
            *(Column(m, label(m), "money") for m in months),
            Column("total", "Total", "money"),
        ],
        rows=rows,
        total=["Total", *month_totals, sum(month_totals)],
        note="Whole dollars. Trade is excluded.",
    )
    filters = {
        "year": year,
        "measure": measure,
        "ae": ae or "",
        "revenue_type": revenue_type or "",
        "market": market or "",
    }
    return dict(
        tables=[table],
        filters=filters,
        messages=messages,
        template="reports/revenue.html",
        years=sorted(set(years) | {year}),
        aes=aes,
        revenue_types=revenue_types,
        markets=markets,
        chart=bar_chart([label(m) for m in months], month_totals, title=f"Monthly {measure} revenue, {year}"),
    )
