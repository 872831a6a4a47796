"""How figures are written, the same way in HTML and in CSV downloads.

Money is stored in cents and shown in whole dollars (rounded half away from
zero); percentages to one decimal.
"""

from __future__ import annotations

from ..months import label


def _month(value: str) -> str:
    """A YYYY-MM key as Mmm-YY; other text (a "Total" label) as it is."""
    if len(value) == 7 and value[4] == "-" and value[:4].isdigit():
        return label(value)
    return value


def when(iso: str | None) -> str | None:
    """'2026-01-05T14:03:00+00:00' -> '2026-01-05 14:03 UTC'."""
    if not iso:
        return None
    return iso[:10] + " " + iso[11:16] + (" UTC" if iso.endswith("+00:00") else "")


def dollars(cents: int | None) -> int | None:
    if cents is None:
        return None
    if cents >= 0:
        return (cents + 50) // 100
    return -((-cents + 50) // 100)


def pct(part: int | float | None, whole: int | float | None) -> float | None:
    """part / whole as a percentage with one decimal; None if undefined."""
    if part is None or not whole:
        return None
    return round(part * 100 / whole, 1)


def show(value, kind: str) -> str:
    """A cell as displayed in HTML."""
    if value is None:
        return "—" if kind != "text" else ""
    if kind == "money":
        return f"{dollars(value):,}"
    if kind == "int":
        return f"{value:,}"
    if kind == "pct":
        return f"{value:.1f}%"
    if kind == "month":
        return _month(value)
    return str(value)


def csv_value(value, kind: str) -> str:
    """The same cell in a CSV download: the same figure, no separators."""
    if value is None:
        return ""
    if kind == "money":
        return str(dollars(value))
    if kind == "int":
        return str(value)
    if kind == "pct":
        return f"{value:.1f}"
    if kind == "month":
        return _month(value)
    return str(value)


def init_app(app) -> None:
    app.jinja_env.filters["show"] = show
    app.jinja_env.filters["month_label"] = label
    app.jinja_env.filters["when"] = when
