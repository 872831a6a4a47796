"""Broadcast month status: open or closed, what is in it, last import."""

from __future__ import annotations

from pathlib import PurePath

from flask import abort, flash, redirect, url_for
from flask_login import current_user
from flask_wtf import FlaskForm

from ... import db
from ...db import query
from ...months import MonthError, label, parse_month_key
from ..charts import status_chart
from ..formatting import when
from .common import Column, Table, cached, respond

# From the report totals (db.spot_totals).
MONTHS_SQL = """
SELECT broadcast_month AS month,
       SUM(spots) AS spots,
       SUM(CASE WHEN revenue_type <> 'Trade' THEN gross ELSE 0 END) AS gross,
       SUM(CASE WHEN revenue_type <> 'Trade' THEN net ELSE 0 END) AS net,
       MAX(import_batch_id) AS batch_id
FROM spot_totals
GROUP BY broadcast_month
"""

CLOSURES_SQL = """
SELECT broadcast_month AS month, closed_at, closed_by FROM month_closures
"""

BATCHES_SQL = """
SELECT id, kind, source_file, finished_at FROM import_batches
"""


class ActionForm(FlaskForm):
    """Only a CSRF token: the month is in the URL."""


def view():
    return respond(
        "months",
        "Month status",
        [cached("months", (), _table)],
        filters={},
        messages=[],
        template="reports/months.html",
        form=ActionForm(),
        can_change=current_user.is_admin,
        chart=_chart(cached("months", (), _table)),
    )


def _chart(table: Table) -> dict:
    """The table's months as a timeline, each cell coloured by status."""
    at = {c.key: i for i, c in enumerate(table.columns)}
    return status_chart(
        [
            (row[at["month"]], "closed" if row[at["status"]] == "closed" else "open" if row[at["spots"]] else "empty")
            for row in table.rows
        ],
        title="Broadcast months by status",
        caption="Each broadcast month, oldest first: closed, open with imported data, or open without data.",
    )


def _table() -> Table:
    months = {row["month"]: row for row in query(MONTHS_SQL)}
    closures = {row["month"]: row for row in query(CLOSURES_SQL)}
    batches = {row["id"]: row for row in query(BATCHES_SQL)}
    table = Table(
        "months",
        "Broadcast months",
        [
            Column("month", "Month", "month"),
            Column("status", "Status"),
            Column("closed", "Closed at (by)"),
            Column("spots", "Spots", "int"),
            Column("gross", "Gross", "money"),
            Column("net", "Net", "money"),
            Column("batch", "Last import batch", "int"),
            Column("imported", "Imported at"),
            Column("source", "Source"),
        ],
        note="Spots counts every spot; gross and net exclude Trade. Whole dollars.",
    )
    for month in sorted(set(months) | set(closures), reverse=True):
        row = months.get(month)
        closure = closures.get(month)
        batch = batches.get(row["batch_id"]) if row else None
        table.rows.append(
            [
                month,
                "closed" if closure else "open",
                f"{when(closure['closed_at'])} ({closure['closed_by']})" if closure else None,
                row["spots"] if row else 0,
                row["gross"] if row else 0,
                row["net"] if row else 0,
                batch["id"] if batch else None,
                when(batch["finished_at"]) if batch else None,
                (PurePath(batch["source_file"]).name if batch["kind"] == "import" else batch["source_file"])
                if batch
                else None,
            ]
        )
    if table.rows:
        table.total = [
            "Total",
            "",
            None,
            sum(r[3] for r in table.rows),
            sum(r[4] for r in table.rows),
            sum(r[5] for r in table.rows),
            None,
            None,
            None,
        ]
    return table


def _month_from_url(month: str) -> str:
    try:
        return parse_month_key(month)
    except MonthError as exc:
        abort(400, description=str(exc))


def close(month: str):
    key = _month_from_url(month)
    if not ActionForm().validate_on_submit():
        abort(400, description="The form had expired; please try again.")
    if db.close_month(db.get_db(), key, current_user.username):
        flash(f"{label(key)} is now closed: imports leave it unchanged.", "info")
    else:
        flash(f"{label(key)} was already closed.", "info")
    return redirect(url_for("reports.months"))


def reopen(month: str):
    key = _month_from_url(month)
    if not ActionForm().validate_on_submit():
        abort(400, description="The form had expired; please try again.")
    if db.reopen_month(db.get_db(), key):
        flash(f"{label(key)} is open again: the next import replaces it.", "info")
    else:
        flash(f"{label(key)} was not closed.", "info")
    return redirect(url_for("reports.months"))
