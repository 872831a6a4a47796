"""What the reports share: tables that render as HTML or CSV, filters."""

from __future__ import annotations

import csv
import io
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import date

from flask import Response, abort, current_app, g, render_template, request

from ... import db
from ...db import get_db, query
from ..formatting import csv_value


@dataclass
class Column:
    key: str
    title: str
    kind: str = "text"  # text | money | int | pct | month


@dataclass
class Table:
    key: str
    title: str
    columns: list[Column]
    rows: list[list] = field(default_factory=list)
    total: list | None = None
    note: str = ""


def csv_response(table: Table, filename: str) -> Response:
    """One table as CSV, every cell (column titles included) defused."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([defuse(c.title) for c in table.columns])
    for row in table.rows + ([table.total] if table.total else []):
        writer.writerow([defuse(csv_value(v, c.kind)) for v, c in zip(row, table.columns, strict=True)])
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}-{table.key}.csv"'},
    )


# What a spreadsheet may run as a formula (OWASP's list); a plain number
# such as -50 is left a number.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def defuse(text: str) -> str:
    """A CSV cell as text a spreadsheet shows and never runs: a leading
    apostrophe when it starts like a formula."""
    if text.startswith(FORMULA_START) and not PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def respond(
    name: str,
    title: str,
    tables: list[Table],
    *,
    filters: dict,
    messages: list[str],
    template: str = "reports/report.html",
    **context,
):
    """The report as HTML, or one of its tables as CSV with ?format=csv."""
    fmt = request.args.get("format", "html")
    if fmt == "csv":
        key = request.args.get("table", tables[0].key)
        for table in tables:
            if table.key == key:
                year = filters.get("year")
                return csv_response(table, filename=f"{name}-{year}" if year else name)
        abort(
            400,
            description=f"This report has no table {key!r}; choose one of " + ", ".join(t.key for t in tables) + ".",
        )
    if fmt != "html":
        abort(400, description="format must be html or csv.")
    csv_args = {k: v for k, v in filters.items() if v not in (None, "")}
    return render_template(
        template,
        name=name,
        title=title,
        tables=tables,
        filters=filters,
        messages=messages,
        csv_args=csv_args,
        **context,
    )


# --- cache -------------------------------------------------------------------


class ReportCache:
    """What the reports computed, per process, keyed on the database's data
    version (db.data_version), which every write to spots, budgets or month
    closures changes in its own transaction.  An entry is only ever served
    for the exact version it was computed from, so a figure is never stale;
    when a request sees another version every entry is dropped."""

    def __init__(self, max_entries: int = 256):
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._version: int | None = None
        self._entries: OrderedDict[Hashable, object] = OrderedDict()

    def get_or_compute(self, version: int, key: Hashable, compute: Callable[[], object]):
        with self._lock:
            if version != self._version:
                self._entries.clear()
                self._version = version
            elif key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        value = compute()
        with self._lock:
            if version == self._version:
                self._entries[key] = value
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._entries)


def report_cache() -> ReportCache:
    return current_app.extensions.setdefault("ctv_report_cache", ReportCache())


def data_version() -> int:
    """The data version this request reads.  The first call opens a read
    transaction that lasts until the request's connection is closed, so the
    version and every figure read afterwards come from one snapshot."""
    if "data_version" not in g:
        conn = get_db()
        if not conn.in_transaction:
            conn.execute("BEGIN")
        g.data_version = db.data_version(conn)
    return g.data_version


def cached(name: str, key: tuple, compute: Callable[[], object]):
    """compute(), or what it returned before for the same report, key and
    data version.  The result is shared between requests: never change
    it."""
    return report_cache().get_or_compute(data_version(), (name, *key), compute)


# --- filters -----------------------------------------------------------------


def years_with_data() -> list[int]:
    """The years from the first to the last month with spots (two index
    look-ups rather than a scan of every spot)."""

    def compute():
        first, last = query("SELECT MIN(broadcast_month), MAX(broadcast_month) FROM spot_totals")[0]
        if first is None:
            return []
        return list(range(int(first[:4]), int(last[:4]) + 1))

    return list(cached("years", (), compute))


def raw_arg(name: str) -> str:
    return request.args.get(name, "").strip()


def year_arg(years: list[int]) -> int:
    """?year=, checked; defaults to this year if it has data, else the last
    year with data."""
    raw = request.args.get("year", "").strip()
    if raw:
        if len(raw) != 4 or not (raw.isascii() and raw.isdigit()) or not 1990 <= int(raw) <= 2100:
            abort(400, description=f"year must be a year like {date.today().year}, not {raw!r}.")
        return int(raw)
    this_year = date.today().year
    if this_year in years or not years:
        return this_year
    return years[-1]


def measure_arg() -> str:
    raw = request.args.get("measure", "gross").strip() or "gross"
    if raw not in ("gross", "net"):
        abort(400, description=f"measure must be gross or net, not {raw!r}.")
    return raw


def choice_arg(name: str, label: str, options: list[str], messages: list[str]) -> str | None:
    """An optional filter that must be one of ``options``; an unknown value
    is ignored with a message."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    if raw not in options:
        messages.append(f"There is no {label} {raw!r}; that filter was ignored.")
        return None
    return raw
