"""Server-side SVG charts: geometry here, markup in templates/_chart.html.

Every function is pure: amounts in (cents, as the database keeps them), a
dict of rounded coordinates and texts out.  Negative amounts draw as zero and
a chart with nothing to draw says so (``empty``): no NaN, no negative width,
no division by zero.  Colours are classes in style.css (``series-*``,
``mark-*``, ``lang-*``, ``status-*``), each with one meaning in every report.
"""

from __future__ import annotations

import math

from ..months import MONTH_ABBR, label
from .formatting import dollars, pct

# Average width of a character of chart text (11px sans-serif), to lay out
# legends and cut names without measuring fonts.
CHAR_W = 7


def _nice_step(top: float, ticks: int = 4) -> float:
    raw = top / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _scale(highest: float) -> tuple[float, float]:
    """The tick step and the top of a scale for values from 0 to highest."""
    step = _nice_step(highest) if highest > 0 else 1
    return step, step * max(math.ceil(highest / step), 1)


def _short(amount: float) -> str:
    if abs(amount) >= 1_000_000:
        return f"{amount / 1_000_000:g}M"
    if abs(amount) >= 1_000:
        return f"{amount / 1_000:g}k"
    return f"{amount:g}"


def _fit(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _axis_texts(labels: list[str]) -> list[str]:
    """Labels without a last word they all share ("Jan 2026", "Feb 2026":
    "Jan", "Feb"); the chart's title says the year once."""
    heads = [text.rpartition(" ") for text in labels]
    if len(labels) > 1 and all(head and tail == heads[0][2] for head, _, tail in heads):
        return [head for head, _, _ in heads]
    return list(labels)


def _frame(
    kind: str, key: str, *, title: str, desc: str, caption: str, width: int, height: int, empty_text: str = ""
) -> dict:
    """What every chart has: the figure's ids, texts and size."""
    return {
        "kind": kind,
        "id": f"chart-{key}",
        "title": title,
        "desc": desc,
        "caption": caption,
        "width": width,
        "height": height,
        "empty": bool(empty_text),
        "empty_text": empty_text,
    }


def _legend(items: list[tuple[str, str]], *, x0: float, y: float, right: float) -> tuple[list[dict], float]:
    """Legend entries (css class, text) left to right, wrapped into rows
    that end before ``right``; returns them and the y below the last row."""
    entries, x = [], x0
    for css, text in items:
        w = 18 + len(text) * CHAR_W + 14
        if x > x0 and x + w > right:
            x, y = x0, y + 18
        entries.append(
            {
                "class": css,
                "text": text,
                "x": round(x, 1),
                "y": round(y, 1),
                "text_x": round(x + 18, 1),
                "text_y": round(y + 10, 1),
            }
        )
        x += w
    return entries, y + 18


def bar_chart(labels: list[str], cents: list[int], *, title: str, width: int = 760, height: int = 240) -> dict:
    """Bars for whole-dollar amounts (negative totals draw as zero)."""
    values = [max(dollars(c) or 0, 0) for c in cents]
    left, right, top, bottom = 56, 8, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    highest = max(values, default=0)
    step, scale_top = _scale(highest)
    slot = plot_w / max(len(values), 1)
    bars = []
    for i, (text, axis, value) in enumerate(zip(labels, _axis_texts(labels), values, strict=True)):
        h = plot_h * value / scale_top
        bars.append(
            {
                "x": round(left + i * slot + slot * 0.15, 1),
                "y": round(top + plot_h - h, 1),
                "width": round(slot * 0.7, 1),
                "height": round(h, 1),
                "label": text,
                "axis": axis,
                "label_x": round(left + i * slot + slot / 2, 1),
                "value": f"{value:,}",
            }
        )
    ticks = []
    for k in range(int(round(scale_top / step)) + 1):
        amount = k * step
        ticks.append({"y": round(top + plot_h - plot_h * amount / scale_top, 1), "label": _short(amount)})
    if bars and highest > 0:
        peak = values.index(highest)
        desc = (
            f"{len(bars)} bars, {labels[0]} to {labels[-1]}; the highest "
            f"is {labels[peak]} at {highest:,}. The table below has "
            "every figure."
        )
    else:
        desc = "Every bar is zero."
    return {
        **_frame(
            "bar", "revenue", title=title, desc=desc, caption=f"{title} (whole dollars)", width=width, height=height
        ),
        "bars": bars,
        "ticks": ticks,
        "left": left,
        "right": width - right,
        "baseline": top + plot_h,
        "label_y": height - 8,
    }


def pacing_chart(rows: list[tuple[str, int, int]], *, title: str, caption: str, width: int = 760) -> dict:
    """Booked against budget, one horizontal bar per account executive.

    ``rows`` are (name, booked cents, budget cents).  The bar is booked (zero
    if negative), the mark is the budget (none without a positive budget) and
    the label is pacing, booked as a percentage of budget."""
    left, right, top, row_h, bottom = 150, 84, 30, 28, 26
    plot_w = width - left - right
    if not rows:
        return {
            **_frame(
                "pacing",
                "ae",
                title=title,
                desc="No bookings and no budgets.",
                caption=caption,
                width=width,
                height=60,
                empty_text="No bookings and no budgets this year.",
            ),
            "rows": [],
            "ticks": [],
            "legend": [],
        }
    entries = []
    for name, booked, budget in rows:
        booked_d = max(dollars(booked) or 0, 0)
        has_budget = budget is not None and budget > 0
        pacing = pct(booked, budget) if has_budget else None
        entries.append((name, booked_d, dollars(budget) if has_budget else None, pacing))
    highest = max(max(b, g or 0) for _, b, g, _ in entries)
    step, scale_top = _scale(highest)

    def x_of(amount: float) -> float:
        return round(left + plot_w * amount / scale_top, 1)

    bars = []
    for i, (name, booked_d, budget_d, pacing) in enumerate(entries):
        y0 = top + i * row_h
        met = pacing is not None and pacing >= 100
        bars.append(
            {
                "name": name,
                "short": _fit(name, 20),
                "name_y": y0 + row_h / 2 + 4,
                "x": left,
                "y": y0 + 6,
                "width": round(x_of(booked_d) - left, 1),
                "height": row_h - 12,
                "mark": None if budget_d is None else {"x": x_of(budget_d), "y1": y0 + 2, "y2": y0 + row_h - 2},
                "pacing": "no budget" if pacing is None else f"{pacing:.1f}%",
                "met": met,
                "tip": f"{name}: booked {booked_d:,}"
                + ("" if budget_d is None else f", budget {budget_d:,}, pacing {pacing:.1f}%"),
            }
        )
    plot_bottom = top + len(bars) * row_h
    ticks = [{"x": x_of(k * step), "label": _short(k * step)} for k in range(int(round(scale_top / step)) + 1)]
    met = sum(1 for b in bars if b["met"])
    without = sum(1 for b in bars if b["mark"] is None)
    desc = (
        f"Booked for {len(bars)} account executives, each with the "
        f"budget as a mark: {met} at or above budget, "
        f"{len(bars) - met - without} below, {without} without a "
        "budget. The table below has every figure."
    )
    return {
        **_frame("pacing", "ae", title=title, desc=desc, caption=caption, width=width, height=plot_bottom + bottom),
        "rows": bars,
        "ticks": ticks,
        "left": left,
        "plot_right": left + plot_w,
        "top": top,
        "plot_bottom": plot_bottom,
        "tick_y": plot_bottom + 16,
        "pacing_x": left + plot_w + 12,
        "legend": {"booked_x": left, "budget_x": left + 90, "y": 8, "pacing_y": top - 8},
    }


def share_chart(
    months: list[str],
    amounts: list[tuple[str, str, int]],
    *,
    title: str,
    caption: str,
    keep: int = 7,
    width: int = 760,
    plot_h: int = 220,
) -> dict:
    """One 100%-stacked bar per month, a segment per language.

    ``months`` are the YYYY-MM keys of one year; ``amounts`` are (language,
    month, cents).  Negative amounts count as zero.  Languages are ordered by
    their year total, largest first (at the bottom of each bar), and keep
    one colour in every month; with more than ``keep`` languages, all but
    the ``keep - 1`` largest are one segment, "Other"."""
    column = {m: i for i, m in enumerate(months)}
    grid: dict[str, list[int]] = {}
    negative = False
    for name, month, cents in amounts:
        if month in column:
            negative = negative or (cents or 0) < 0
            grid.setdefault(name, [0] * len(months))[column[month]] += max(cents or 0, 0)
    if negative:
        caption += " Negative totals (credits) count as zero here."
    ranked = sorted((n for n in grid if sum(grid[n]) > 0), key=lambda n: (-sum(grid[n]), n))
    if not ranked:
        return {
            **_frame(
                "share",
                "languages",
                title=title,
                desc="No revenue in any month.",
                caption=caption,
                width=width,
                height=60,
                empty_text="No revenue this year.",
            ),
            "bars": [],
            "legend": [],
            "ticks": [],
        }
    groups = [(n, f"lang-{i}", grid[n], n) for i, n in enumerate(ranked)]
    if len(ranked) > keep:
        rest = ranked[keep - 1 :]
        groups = groups[: keep - 1] + [
            (
                "Other",
                "lang-other",
                [sum(grid[n][i] for n in rest) for i in range(len(months))],
                "Other (" + ", ".join(rest) + ")",
            )
        ]
    year_total = sum(sum(values) for _, _, values, _ in groups)
    left, right = 44, 8
    legend, top = _legend(
        [(css, f"{name} {pct(sum(values), year_total):.1f}%") for name, css, values, _ in groups],
        x0=left,
        y=6,
        right=width - right,
    )
    top += 6
    plot_w = width - left - right
    slot = plot_w / max(len(months), 1)
    baseline = top + plot_h
    bars = []
    for i, month in enumerate(months):
        total = sum(values[i] for _, _, values, _ in groups)
        bar = {
            "month": month,
            "label": MONTH_ABBR[int(month[5:7]) - 1],
            "x": round(left + i * slot + slot * 0.15, 1),
            "width": round(slot * 0.7, 1),
            "label_x": round(left + i * slot + slot / 2, 1),
            "tip": f"{label(month)}: no revenue",
            "segments": [],
        }
        bars.append(bar)
        if total <= 0:
            continue
        bar["tip"] = f"{label(month)}: {dollars(total):,}"
        below = 0
        for _, css, values, long_name in groups:
            if values[i] <= 0:
                continue
            y_low = round(baseline - plot_h * below / total, 1)
            below += values[i]
            y_high = round(baseline - plot_h * below / total, 1)
            share = values[i] * 100 / total
            height = round(y_low - y_high, 1)
            bar["segments"].append(
                {
                    "class": css,
                    "y": y_high,
                    "height": height,
                    "text": f"{share:.0f}%" if height >= 16 else "",
                    "text_class": ("on-light" if css == "lang-other" else "on-dark"),
                    "text_y": round((y_low + y_high) / 2 + 4, 1),
                    "tip": f"{label(month)}: {long_name} {share:.1f}% ({dollars(values[i]):,})",
                }
            )
    ticks = [{"y": round(baseline - plot_h * k / 4, 1), "label": f"{k * 25}%"} for k in range(5)]
    shown = sum(1 for b in bars if b["segments"])
    desc = (
        f"Share of revenue by language in each of {len(months)} "
        f"broadcast months ({shown} with revenue); over the year: "
        + ", ".join(e["text"] for e in legend)
        + ". The tables below have every figure."
    )
    return {
        **_frame("share", "languages", title=title, desc=desc, caption=caption, width=width, height=baseline + 24),
        "bars": bars,
        "legend": legend,
        "ticks": ticks,
        "left": left,
        "right": width - right,
        "top": top,
        "baseline": baseline,
        "label_y": baseline + 16,
    }


STATUS_TEXT = {"closed": "Closed", "open": "Open, data imported", "empty": "Open, no data"}


def status_chart(months: list[tuple[str, str]], *, title: str, caption: str, width: int = 760) -> dict:
    """Broadcast months as a timeline of cells, a row per year, oldest first.

    ``months`` are (YYYY-MM, status) with status ``closed``, ``open`` (with
    imported data) or ``empty`` (open without data); months of those years
    that are not listed are open without data."""
    if not months:
        return {
            **_frame(
                "status",
                "months",
                title=title,
                desc="No broadcast months yet.",
                caption=caption,
                width=width,
                height=60,
                empty_text="No broadcast months yet.",
            ),
            "cells": [],
            "years": [],
            "legend": [],
        }
    status = dict(months)
    years = list(range(min(int(m[:4]) for m in status), max(int(m[:4]) for m in status) + 1))
    left, right, top, row_h, gap = 44, 8, 30, 34, 4
    cell_w = (width - left - right) / 12
    cells, counts = [], dict.fromkeys(STATUS_TEXT, 0)
    for row, year in enumerate(years):
        for i, abbr in enumerate(MONTH_ABBR):
            key = f"{year:04d}-{i + 1:02d}"
            state = status.get(key, "empty")
            if state not in STATUS_TEXT:
                state = "empty"
            counts[state] += 1
            y = top + row * row_h
            cells.append(
                {
                    "month": key,
                    "status": state,
                    "text": abbr,
                    "x": round(left + i * cell_w + gap / 2, 1),
                    "y": y,
                    "width": round(cell_w - gap, 1),
                    "height": row_h - gap,
                    "text_x": round(left + i * cell_w + cell_w / 2, 1),
                    "text_y": y + (row_h - gap) / 2 + 4,
                    "tip": f"{label(key)}: {STATUS_TEXT[state].lower()}",
                }
            )
    legend, _ = _legend(
        [(f"status-{s}", f"{text} ({counts[s]})") for s, text in STATUS_TEXT.items()], x0=left, y=6, right=width - right
    )
    desc = (
        f"{len(cells)} broadcast months, {label(cells[0]['month'])} to "
        f"{label(cells[-1]['month'])}: {counts['closed']} closed, "
        f"{counts['open']} open with imported data, {counts['empty']} "
        "open without data. The table below lists every month with data "
        "or closed."
    )
    return {
        **_frame(
            "status",
            "months",
            title=title,
            desc=desc,
            caption=caption,
            width=width,
            height=top + len(years) * row_h + 2,
        ),
        "cells": cells,
        "legend": legend,
        "years": [
            {"text": str(y), "x": left - 8, "y": top + r * row_h + (row_h - gap) / 2 + 4} for r, y in enumerate(years)
        ],
    }
