"""The charts' geometry (src/web/charts.py) at its edges, and the SVG that
each report draws from the fixture in conftest.py."""

import math
import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from src.months import year_months
from src.web.charts import bar_chart, pacing_chart, share_chart, status_chart

SVG = "{http://www.w3.org/2000/svg}"
MONTHS = year_months(2026)


def walk(value, key=""):
    """Every (key, number) in a chart dict, nested lists and dicts included."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v, key)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield key, value


def assert_sane(chart: dict) -> None:
    """No NaN or infinity anywhere, no negative size or coordinate, and
    everything inside the chart's own box."""
    for key, number in walk(chart):
        assert math.isfinite(number), (key, number)
        assert number >= 0, (key, number)
        if key.endswith("x") or key in ("width", "right", "left"):
            assert number <= chart["width"] + 0.05, (key, number)
        if key.endswith("y") or key.startswith("y") or key == "height":
            assert number <= chart["height"] + 0.05, (key, number)
    assert chart["title"] and chart["desc"] and chart["caption"]
    assert re.fullmatch(r"chart-[a-z]+", chart["id"])


# --- revenue bars --------------------------------------------------------------


def test_bar_chart_all_zeros_and_negative():
    chart = bar_chart(["Jan", "Feb"], [0, -5000], title="t")
    assert_sane(chart)
    assert [b["height"] for b in chart["bars"]] == [0, 0]
    assert [b["value"] for b in chart["bars"]] == ["0", "0"]


def test_bar_chart_axis_says_the_shared_year_once():
    chart = bar_chart(["Jan 2026", "Feb 2026"], [100, 200], title="2026")
    assert [b["axis"] for b in chart["bars"]] == ["Jan", "Feb"]
    assert [b["label"] for b in chart["bars"]] == ["Jan 2026", "Feb 2026"]
    chart = bar_chart(["Dec 2025", "Jan 2026"], [100, 200], title="t")
    assert [b["axis"] for b in chart["bars"]] == ["Dec 2025", "Jan 2026"]
    chart = bar_chart(["Jan-26", "Feb-26"], [100, 200], title="t")
    assert [b["axis"] for b in chart["bars"]] == ["Jan-26", "Feb-26"]


# --- AE pacing -----------------------------------------------------------------


def pacing(rows):
    chart = pacing_chart(rows, title="Booked against budget", caption="c")
    assert_sane(chart)
    return chart


def test_pacing_one_ae_under_budget():
    chart = pacing([("Alice", 350000, 400000)])
    (row,) = chart["rows"]
    assert row["pacing"] == "87.5%" and not row["met"]
    # the budget mark lies beyond the bar's end, across the bar's slot
    assert row["x"] + row["width"] < row["mark"]["x"] <= chart["plot_right"]
    assert row["mark"]["y1"] < row["y"] < row["y"] + row["height"] < row["mark"]["y2"]
    assert "1 at or above" not in chart["desc"]
    assert "0 at or above budget, 1 below, 0 without" in chart["desc"]


def test_pacing_over_budget_is_met_and_bars_scale_together():
    chart = pacing([("Alice", 300000, 200000), ("Bob", 100000, 200000)])
    alice, bob = chart["rows"]
    assert alice["pacing"] == "150.0%" and alice["met"]
    assert alice["width"] == pytest.approx(3 * bob["width"], abs=0.2)
    assert alice["mark"]["x"] == bob["mark"]["x"]  # the same budget
    assert alice["x"] + alice["width"] <= chart["plot_right"]


def test_pacing_zero_missing_and_negative_budget_draw_no_mark():
    chart = pacing([("A", 100000, 0), ("B", 100000, None), ("C", 100000, -5000)])
    for row in chart["rows"]:
        assert row["mark"] is None
        assert row["pacing"] == "no budget"
        assert row["width"] > 0
    assert "3 without a budget" in chart["desc"]


def test_pacing_negative_booked_draws_no_bar_but_says_the_pacing():
    chart = pacing([("Credits", -200000, 100000)])
    (row,) = chart["rows"]
    assert row["width"] == 0
    assert row["pacing"] == "-200.0%"
    assert row["mark"]["x"] > chart["left"]


def test_pacing_all_zeros():
    chart = pacing([("A", 0, 0), ("B", 0, 0)])
    assert [r["width"] for r in chart["rows"]] == [0, 0]
    assert [t["label"] for t in chart["ticks"]] == ["0", "1"]


def test_pacing_no_aes_is_an_empty_chart():
    chart = pacing([])
    assert chart["empty"] and chart["rows"] == []
    assert "No bookings" in chart["empty_text"]


def test_pacing_long_names_are_cut_with_the_full_name_in_the_tip():
    name = "Maria Fernanda de la Cruz Villanueva"
    (row,) = pacing([(name, 100, 100)])["rows"]
    assert len(row["short"]) == 20 and row["short"].endswith("…")
    assert row["tip"].startswith(name + ":")


def test_pacing_height_grows_with_the_number_of_aes():
    small = pacing([("A", 1, 1)])
    large = pacing([(f"AE {i}", i * 1000, 5000) for i in range(30)])
    assert large["height"] > small["height"]
    ys = [r["y"] for r in large["rows"]]
    assert ys == sorted(ys) and len(set(ys)) == 30


@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=40),
            st.integers(-(10**12), 10**12),
            st.one_of(st.none(), st.integers(-(10**12), 10**12)),
        ),
        max_size=25,
    )
)
def test_pacing_is_always_drawable(rows):
    chart = pacing(rows)
    for row in chart["rows"]:
        assert row["x"] + row["width"] <= chart["plot_right"] + 0.05
        if row["mark"]:
            assert chart["left"] <= row["mark"]["x"] <= chart["plot_right"]


# --- language share ------------------------------------------------------------


def share(amounts, **kw):
    chart = share_chart(MONTHS, amounts, title="Language share", caption="c", **kw)
    assert_sane(chart)
    return chart


def stacked(bar) -> float:
    return round(sum(s["height"] for s in bar["segments"]), 1)


def test_share_each_month_fills_the_bar_in_one_order():
    chart = share([("M", "2026-01", 300), ("V", "2026-01", 100), ("V", "2026-02", 500)])
    jan, feb = chart["bars"][:2]
    plot = chart["baseline"] - chart["top"]
    assert stacked(jan) == stacked(feb) == plot
    # V is the larger language over the year: lang-0, at the bottom
    assert [s["class"] for s in jan["segments"]] == ["lang-0", "lang-1"]
    assert [s["class"] for s in feb["segments"]] == ["lang-0"]
    assert jan["segments"][0]["tip"].endswith("V 25.0% (1)")
    assert [e["text"] for e in chart["legend"]] == ["V 66.7%", "M 33.3%"]
    # the segments touch: no gap and no overlap
    assert jan["segments"][0]["y"] == pytest.approx(jan["segments"][1]["y"] + jan["segments"][1]["height"], abs=0.05)
    assert [b["label"] for b in chart["bars"]][:3] == ["Jan", "Feb", "Mar"]


def test_share_twenty_languages_keep_six_and_other():
    amounts = [(f"L{i:02d}", m, (i + 1) * 1000) for i in range(20) for m in MONTHS]
    chart = share(amounts)
    names = [e["text"].split()[0] for e in chart["legend"]]
    assert names == ["L19", "L18", "L17", "L16", "L15", "L14", "Other"]
    assert [e["class"] for e in chart["legend"]] == [
        "lang-0",
        "lang-1",
        "lang-2",
        "lang-3",
        "lang-4",
        "lang-5",
        "lang-other",
    ]
    for bar in chart["bars"]:
        assert len(bar["segments"]) == 7
        assert [s["class"] for s in bar["segments"]] == [e["class"] for e in chart["legend"]]
    other = chart["bars"][0]["segments"][-1]
    assert "Other (L13, L12" in other["tip"]
    assert other["text_class"] == "on-light"
    # the legend wraps inside the chart's width
    assert max(e["x"] for e in chart["legend"]) < chart["width"] - 60


def test_share_seven_languages_have_no_other():
    chart = share([(f"L{i}", "2026-03", 100 + i) for i in range(7)])
    assert [e["class"] for e in chart["legend"]][-1] == "lang-6"


def test_share_negative_amounts_count_as_zero():
    chart = share([("M", "2026-01", 1000), ("V", "2026-01", -400), ("V", "2026-02", -400)])
    jan, feb = chart["bars"][:2]
    assert len(jan["segments"]) == 1 and jan["segments"][0]["class"] == "lang-0"
    assert feb["segments"] == [] and "no revenue" in feb["tip"]
    assert [e["text"] for e in chart["legend"]] == ["M 100.0%"]
    assert chart["caption"].endswith("count as zero here.")
    assert "zero" not in share([("M", "2026-01", 1)])["caption"]


def test_share_all_zeros_or_nothing_is_an_empty_chart():
    for amounts in ([], [("M", "2026-01", 0)], [("M", "2026-01", -5)], [("M", "2025-12", 100)]):  # another year's month
        chart = share(amounts)
        assert chart["empty"] and chart["bars"] == []


def test_share_small_segments_have_no_label():
    chart = share([("M", "2026-01", 9900), ("V", "2026-01", 100)])
    big, small = chart["bars"][0]["segments"]
    assert big["text"] == "99%" and small["text"] == ""


@given(
    st.lists(
        st.tuples(st.sampled_from("ABCDEFGHIJ"), st.sampled_from(MONTHS), st.integers(-(10**9), 10**9)), max_size=60
    )
)
def test_share_is_always_drawable(amounts):
    chart = share(amounts)
    plot = chart.get("baseline", 0) - chart.get("top", 0)
    classes = {}
    for bar in chart["bars"]:
        assert stacked(bar) in (0, pytest.approx(plot, abs=0.05))
        for s in bar["segments"]:
            name = s["tip"].split(": ")[1].rsplit(" ", 2)[0]
            assert classes.setdefault(name, s["class"]) == s["class"]


# --- month status --------------------------------------------------------------


def status(months):
    chart = status_chart(months, title="Broadcast months", caption="c")
    assert_sane(chart)
    return chart


def test_status_a_row_per_year_oldest_first_with_gaps_filled():
    chart = status([("2026-02", "open"), ("2025-11", "closed"), ("2025-12", "empty")])
    assert [y["text"] for y in chart["years"]] == ["2025", "2026"]
    cells = chart["cells"]
    assert len(cells) == 24
    assert [c["month"] for c in cells] == sorted(c["month"] for c in cells)
    by_month = {c["month"]: c for c in cells}
    assert by_month["2025-11"]["status"] == "closed"
    assert by_month["2026-02"]["status"] == "open"
    assert by_month["2026-03"]["status"] == "empty"  # not listed
    assert by_month["2025-01"]["text"] == "Jan"
    assert by_month["2025-11"]["tip"].endswith(": closed")
    # left to right within a year, then the next row
    assert by_month["2025-01"]["x"] < by_month["2025-12"]["x"]
    assert by_month["2025-12"]["y"] < by_month["2026-01"]["y"]
    assert by_month["2026-01"]["x"] == by_month["2025-01"]["x"]
    assert [e["text"] for e in chart["legend"]] == ["Closed (1)", "Open, data imported (1)", "Open, no data (22)"]
    assert "24 broadcast months" in chart["desc"]


def test_status_cells_do_not_overlap():
    cells = status([("2026-01", "open")])["cells"]
    for a, b in zip(cells, cells[1:], strict=False):
        assert a["x"] + a["width"] < b["x"]


def test_status_unknown_status_is_open_without_data():
    (cell,) = [c for c in status([("2026-05", "weird")])["cells"] if c["month"] == "2026-05"]
    assert cell["status"] == "empty"


def test_status_no_months_is_an_empty_chart():
    chart = status([])
    assert chart["empty"] and chart["cells"] == []


# --- the reports draw them (fixture of conftest.py) ---------------------------


def figure_svg(html: str) -> ET.Element:
    match = re.search(r"<figure class=\"chart[^>]*>\s*(<svg.*?</svg>)", html, re.S)
    assert match, "no chart"
    svg = ET.fromstring(match.group(1))
    # named by its own title and description
    ids = svg.get("aria-labelledby").split()
    assert svg.get("role") == "img"
    assert [svg.find(f"{SVG}title").get("id"), svg.find(f"{SVG}desc").get("id")] == ids
    assert svg.find(f"{SVG}title").text and svg.find(f"{SVG}desc").text
    assert "<figcaption>" in html
    return svg


def shapes(svg: ET.Element, css: str) -> list[ET.Element]:
    return [e for e in svg.iter() if css in (e.get("class") or "").split()]


def test_ae_report_draws_a_bar_and_a_mark_per_ae(viewer):
    svg = figure_svg(viewer.get("/reports/ae?year=2025").get_data(as_text=True))
    assert svg.find(f"{SVG}title").text == "Booked against budget by AE, 2025"
    # Alice and Bob, both with a budget; the legend has one of each too
    assert len(shapes(svg, "series-booked")) == 2 + 1
    assert len(shapes(svg, "mark-budget")) == 2 + 1
    pacing = [e.text for e in shapes(svg, "pacing")]
    assert pacing == ["87.5%", "66.7%"]


def test_languages_report_draws_segments_per_month(viewer):
    html = viewer.get("/reports/languages?year=2025").get_data(as_text=True)
    svg = figure_svg(html)
    # Jan: M and V; Feb: M; Mar: C; nine months without revenue
    assert len(shapes(svg, "segment")) == 4
    assert len(shapes(svg, "slot-empty")) == 9
    assert [e.get("class") for e in shapes(svg, "swatch")] == ["swatch lang-0", "swatch lang-1", "swatch lang-2"]
    tips = [e.find(f"{SVG}title").text for e in shapes(svg, "segment")]
    assert "V 44.4% (800)" in tips[1]
    net = figure_svg(viewer.get("/reports/languages?year=2025&measure=net").get_data(as_text=True))
    assert "net revenue" in net.find(f"{SVG}title").text


def test_months_report_draws_a_cell_per_month(viewer):
    svg = figure_svg(viewer.get("/reports/months").get_data(as_text=True))
    cells = [
        e
        for e in shapes(svg, "status-open") + shapes(svg, "status-closed") + shapes(svg, "status-empty")
        if e.tag == f"{SVG}rect" and "swatch" not in e.get("class")
    ]
    assert len(cells) == 24  # 2024 and 2025
    # Jan, Feb 2024 and Jan, Feb, Mar 2025 have spots
    assert len([c for c in cells if c.get("class") == "status-open"]) == 5


def test_a_closed_month_is_drawn_closed(admin):
    from .conftest import csrf_token

    token = csrf_token(admin, "/reports/months")
    form = admin.get("/reports/months").get_data(as_text=True)
    action = re.search(r'action="([^"]*/close)"', form).group(1)
    assert admin.post(action, data={"csrf_token": token}).status_code == 302
    svg = figure_svg(admin.get("/reports/months").get_data(as_text=True))
    closed = [e for e in shapes(svg, "status-closed") if e.tag == f"{SVG}rect" and "swatch" not in e.get("class")]
    assert len(closed) == 1


def test_an_empty_year_says_no_data(viewer):
    for url in ("/reports/ae?year=2030", "/reports/languages?year=2030"):
        svg = figure_svg(viewer.get(url).get_data(as_text=True))
        (text,) = shapes(svg, "no-data")
        assert text.text.startswith("No "), url
        assert not shapes(svg, "series-booked") and not shapes(svg, "segment")
