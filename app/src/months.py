"""Broadcast months: stored ``YYYY-MM``, shown ``Mmm YYYY`` (``Jan 2026``).

The sales team's files write a month ``Mmm-YY`` (``Jan-26``); everything
this application shows, links to or writes for people carries the full
year, so that a month is never mistaken for one a century away.
"""

from __future__ import annotations

from datetime import date

MONTH_ABBR = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ABBR_INDEX = {abbr.lower(): i + 1 for i, abbr in enumerate(MONTH_ABBR)}


class MonthError(ValueError):
    pass


def parse_month(text: str) -> str:
    """``'Jan-26'`` -> ``'2026-01'``; also accepts ``'2026-01'``."""
    value = str(text).strip()
    if not value.isascii():
        raise MonthError(f"{value!r} is not a broadcast month like Jan-26")
    abbr, sep, yy = value.partition("-")
    if sep and len(abbr) == 3 and len(yy) == 2 and yy.isdigit():
        month = _ABBR_INDEX.get(abbr.lower())
        if month:
            return f"20{yy}-{month:02d}"
    if (
        len(value) == 7
        and value[4] == "-"
        and value[:4].isdigit()
        and value[5:].isdigit()
        and 1 <= int(value[5:]) <= 12
    ):
        return value
    raise MonthError(f"{value!r} is not a broadcast month like Jan-26")


def parse_month_key(text: str) -> str:
    """A month as this application writes it in URLs and forms: exactly
    ``YYYY-MM``; the short ``Mmm-YY`` spelling is refused there."""
    value = str(text)
    if (
        len(value) == 7
        and value[4] == "-"
        and value.isascii()
        and value[:4].isdigit()
        and value[5:].isdigit()
        and 1 <= int(value[5:]) <= 12
    ):
        return value
    raise MonthError(f"{value!r} is not a month like 2026-01")


def label(key: str) -> str:
    """``'2026-01'`` -> ``'Jan 2026'``."""
    return f"{MONTH_ABBR[int(key[5:7]) - 1]} {key[:4]}"


def file_label(key: str) -> str:
    """``'2026-01'`` -> ``'Jan-26'``, as the team's import files write it."""
    return f"{MONTH_ABBR[int(key[5:7]) - 1]}-{key[2:4]}"


def year_months(year: int) -> list[str]:
    return [f"{year:04d}-{m:02d}" for m in range(1, 13)]


def add_months(key: str, n: int) -> str:
    index = int(key[:4]) * 12 + int(key[5:7]) - 1 + n
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"
