"""Server-side SVG charts: geometry here, markup in templates/_chart.html."""

from __future__ import annotations

import math

from .formatting import dollars


def _nice_step(top: float, ticks: int = 4) -> float:
    raw = top / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _short(amount: float) -> str:
    if abs(amount) >= 1_000_000:
        return f"{amount / 1_000_000:g}M"
    if abs(amount) >= 1_000:
        return f"{amount / 1_000:g}k"
    return f"{amount:g}"


def bar_chart(labels: list[str], cents: list[int], *, title: str,
              width: int = 760, height: int = 240) -> dict:
    """Bars for whole-dollar amounts (negative totals draw as zero)."""
    values = [max(dollars(c) or 0, 0) for c in cents]
    left, right, top, bottom = 56, 8, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    highest = max(values, default=0)
    step = _nice_step(highest) if highest > 0 else 1
    scale_top = step * max(math.ceil(highest / step), 1)
    slot = plot_w / max(len(values), 1)
    bars = []
    for i, (text, value) in enumerate(zip(labels, values)):
        h = plot_h * value / scale_top
        bars.append({
            "x": round(left + i * slot + slot * 0.15, 1),
            "y": round(top + plot_h - h, 1),
            "width": round(slot * 0.7, 1),
            "height": round(h, 1),
            "label": text,
            "label_x": round(left + i * slot + slot / 2, 1),
            "value": f"{value:,}",
        })
    ticks = []
    for k in range(int(round(scale_top / step)) + 1):
        amount = k * step
        ticks.append({"y": round(top + plot_h - plot_h * amount / scale_top, 1),
                      "label": _short(amount)})
    return {"title": title, "width": width, "height": height, "bars": bars,
            "ticks": ticks, "left": left, "right": width - right,
            "baseline": top + plot_h, "label_y": height - 8}
