"""Account executive performance: booked against budget, year over year.

Booked is gross revenue, Trade excluded; budgets are gross amounts per AE
and broadcast month (``import-budget``).  Pacing is booked as a percentage
of budget.
"""

from __future__ import annotations

from ...db import query
from ...months import label, year_months
from ..charts import pacing_chart
from ..formatting import pct
from .common import Column, Table, cached, respond, year_arg, years_with_data

# From the report totals (db.spot_totals).
BOOKED_SQL = """
SELECT COALESCE(sales_person, '(unassigned)') AS ae,
       broadcast_month AS month,
       SUM(gross) AS booked
FROM spot_totals
WHERE broadcast_month BETWEEN :first AND :last
  AND revenue_type <> 'Trade'
GROUP BY month, ae
"""

BUDGET_SQL = """
SELECT sales_person AS ae, broadcast_month AS month, amount
FROM budgets
WHERE broadcast_month BETWEEN :first AND :last
"""

QUARTERS = (("Q1", range(0, 3)), ("Q2", range(3, 6)), ("Q3", range(6, 9)), ("Q4", range(9, 12)))


def view():
    years = years_with_data()
    year = year_arg(years)
    return respond("ae", "AE performance", **cached("ae", (year,), lambda: _compute(years, year)))


def _compute(years: list[int], year: int) -> dict:
    months = year_months(year)
    prior_months = year_months(year - 1)
    booked: dict[str, dict[str, int]] = {}
    for row in query(BOOKED_SQL, {"first": prior_months[0], "last": months[-1]}):
        booked.setdefault(row["ae"], {})[row["month"]] = row["booked"]
    budget: dict[str, dict[str, int]] = {}
    for row in query(BUDGET_SQL, {"first": months[0], "last": months[-1]}):
        budget.setdefault(row["ae"], {})[row["month"]] = row["amount"]
    # Every AE with bookings in either year or a budget has a row, so that
    # the rows add up to the Total row (last year's column included).
    aes = sorted(set(booked) | set(budget))

    def series(source, ae, keys):
        values = source.get(ae, {})
        return [values.get(m, 0) for m in keys]

    summary = Table(
        "summary",
        f"Year {year}: booked against budget",
        [
            Column("ae", "Account executive"),
            Column("booked", "Booked", "money"),
            Column("budget", "Budget", "money"),
            Column("pacing", "Pacing (% of budget)", "pct"),
            Column("prior", f"Booked {year - 1}", "money"),
            Column("yoy", "Change on last year", "pct"),
        ],
        note="Gross, whole dollars, Trade excluded. Pacing = booked ÷ "
        "budget. Change on last year = booked ÷ last year's booked "
        "− 100%.",
    )
    quarters = Table(
        "quarters",
        f"By quarter, {year}",
        [Column("ae", "Account executive")]
        + [
            col
            for q, _ in QUARTERS
            for col in (
                Column(f"{q}_booked", f"{q} booked", "money"),
                Column(f"{q}_budget", f"{q} budget", "money"),
                Column(f"{q}_pacing", f"{q} %", "pct"),
            )
        ],
    )
    monthly = Table(
        "months",
        f"Booked by month, {year}",
        [
            Column("ae", "Account executive"),
            *(Column(m, label(m), "money") for m in months),
            Column("total", "Total", "money"),
        ],
    )
    pacing = Table(
        "pacing",
        f"Pacing by month (% of budget), {year}",
        [
            Column("ae", "Account executive"),
            *(Column(m, label(m), "pct") for m in months),
            Column("total", "Year", "pct"),
        ],
    )

    yoy = Table(
        "yoy",
        f"Year over year by quarter, {year} against {year - 1}",
        [Column("ae", "Account executive")]
        + [
            col
            for q, _ in QUARTERS
            for col in (
                Column(f"{q}_booked", f"{q} {year}", "money"),
                Column(f"{q}_prior", f"{q} {year - 1}", "money"),
                Column(f"{q}_change", f"{q} change", "pct"),
            )
        ],
    )

    def add_rows(name, got, goal, last):
        summary.rows.append(
            [name, sum(got), sum(goal), pct(sum(got), sum(goal)), sum(last), _change(sum(got), sum(last))]
        )
        quarter_cells = []
        for _, idx in QUARTERS:
            b = sum(got[i] for i in idx)
            g = sum(goal[i] for i in idx)
            quarter_cells += [b, g, pct(b, g)]
        quarters.rows.append([name, *quarter_cells])
        yoy_cells = []
        for _, idx in QUARTERS:
            b = sum(got[i] for i in idx)
            p = sum(last[i] for i in idx)
            yoy_cells += [b, p, _change(b, p)]
        yoy.rows.append([name, *yoy_cells])
        monthly.rows.append([name, *got, sum(got)])
        pacing.rows.append([name, *(pct(b, g) for b, g in zip(got, goal, strict=True)), pct(sum(got), sum(goal))])

    totals_got, totals_goal, totals_last = [0] * 12, [0] * 12, [0] * 12
    for ae in aes:
        got = series(booked, ae, months)
        goal = series(budget, ae, months)
        last = series(booked, ae, prior_months)
        add_rows(ae, got, goal, last)
        for i in range(12):
            totals_got[i] += got[i]
            totals_goal[i] += goal[i]
            totals_last[i] += last[i]
    if aes:
        add_rows("Total", totals_got, totals_goal, totals_last)
        for table in (summary, quarters, yoy, monthly, pacing):
            table.total = table.rows.pop()
    return dict(
        tables=[summary, quarters, yoy, monthly, pacing],
        filters={"year": year},
        messages=[],
        years=sorted(set(years) | {year}),
        chart=pacing_chart(
            [(r[0], r[1], r[2]) for r in summary.rows],
            title=f"Booked against budget by AE, {year}",
            caption=f"Booked in {year} (bar), budget (mark) and pacing, per AE; gross, whole dollars.",
        ),
    )


def _change(now: int, before: int) -> float | None:
    if not before:
        return None
    return round((now - before) * 100 / before, 1)
