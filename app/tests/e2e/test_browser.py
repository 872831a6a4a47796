"""The application in a real browser (headless Chromium), served by uvicorn.

Fixtures (one server and one browser per session) are in conftest.py.
"""

from __future__ import annotations

import csv
import re
from datetime import date
from pathlib import Path

import pytest
from playwright.sync_api import expect

from .conftest import LEAVER, PASSWORD, USERNAME

pytestmark = pytest.mark.e2e

REPORTS = {
    "revenue": ("/reports/revenue", "Revenue by customer"),
    "ae": ("/reports/ae", "AE performance"),
    "languages": ("/reports/languages", "Language and market"),
    "months": ("/reports/months", "Month status"),
}
NUMBER = re.compile(r"-?[\d,]+(\.\d+)?%?")


# --- helpers -----------------------------------------------------------------


def normalise(cell: str) -> str:
    """A cell as shown in HTML or CSV, with the HTML's presentation removed
    (thousands separators, '%', '—' for no value)."""
    cell = cell.strip()
    if cell == "—":
        return ""
    if NUMBER.fullmatch(cell):
        return cell.replace(",", "").rstrip("%")
    return cell


def money(cell: str) -> int:
    return int(cell.replace(",", ""))


def html_tables(page) -> list[dict]:
    """Every report table on the page: title, CSV link, and the cells of
    header, body and footer rows as shown."""
    tables = []
    for section in page.locator("section.table").all():
        table = section.locator("table")
        tables.append(
            {
                "title": section.locator("h2").inner_text(),
                "csv": section.get_by_role("link", name="Download CSV"),
                "head": table.locator("thead tr").first.locator("th").all_inner_texts(),
                "body": [row.locator("td").all_inner_texts() for row in table.locator("tbody tr").all()],
                "foot": (table.locator("tfoot tr td").all_inner_texts() if table.locator("tfoot").count() else None),
            }
        )
    return tables


def download_csv(page, link) -> list[list[str]]:
    """Clicks a 'Download CSV' link and reads the file the browser saved."""
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename.endswith(".csv")
    text = Path(download.path()).read_text(encoding="utf-8")
    return list(csv.reader(text.splitlines()))


def show(page, **choices: str) -> None:
    """Chooses filter values and presses Show."""
    for name, value in choices.items():
        page.locator(f"form.filters select[name={name}]").select_option(value)
    with page.expect_navigation():
        page.get_by_role("button", name="Show").click()
    for name, value in choices.items():
        assert f"{name}={value.replace(' ', '+')}" in page.url, page.url


def revenue_footer(page) -> list[int]:
    """The revenue report's month totals and year total."""
    foot = page.locator("section.table table tfoot tr td").all_inner_texts()
    assert foot[0] == "Total"
    return [money(c) for c in foot[1:]]


# --- logging in ----------------------------------------------------------------


def test_wrong_password_shows_an_error_and_stays_on_login(visitor, shots):
    page = visitor.new_page()
    page.goto("/reports/revenue")
    assert "/auth/login" in page.url
    assert page.locator("h1").inner_text() == "Log in"
    shots(page, "login")

    page.get_by_label("User name").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD + "x")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    assert "/auth/login" in page.url
    assert page.locator("h1").inner_text() == "Log in"
    assert page.locator("p.message.error").inner_text() == "Unknown user name or wrong password."
    assert page.get_by_role("button", name="Log out").count() == 0
    shots(page, "login-wrong-password")
    # The failed login is answered with 401, which Chromium logs.
    assert len(visitor.take(r"status of 401 \(Unauthorized\)")) == 1


def test_login_through_the_form_shows_the_reports(visitor, shots):
    page = visitor.new_page()
    page.goto("/reports/languages")
    page.get_by_label("User name").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    # back where the login started, logged in
    assert page.url.endswith("/reports/languages"), page.url
    assert page.locator(".who").inner_text() == f"{USERNAME} (admin)"
    page.get_by_role("link", name="CTV BookedBiz").click()
    page.wait_for_load_state()
    assert page.url.endswith("/reports/")
    links = page.locator("ul.report-list a").all_inner_texts()
    assert len(links) == 4, links
    shots(page, "reports-index")


# --- the four reports --------------------------------------------------------


@pytest.mark.parametrize("report", REPORTS)
def test_report_tables_have_rows_and_match_their_csv(page, shots, report):
    url, title = REPORTS[report]
    page.goto(url)
    assert page.locator("h1").inner_text() == title
    assert page.locator("p.message").count() == 0
    shots(page, f"report-{report}")
    tables = html_tables(page)
    assert tables
    for table in tables:
        assert table["body"], f"{table['title']}: no rows"
        rows = download_csv(page, table["csv"])
        shown = [table["head"], *table["body"]]
        if table["foot"] is not None:
            shown.append(table["foot"])
            # the totals row, figure by figure
            assert rows[-1][0] == table["foot"][0] == "Total"
            assert [normalise(c) for c in rows[-1]] == [normalise(c) for c in table["foot"]], table["title"]
        assert [[normalise(c) for c in row] for row in rows] == [[normalise(c) for c in row] for row in shown], table[
            "title"
        ]
        assert page.url.endswith(url)  # the download did not navigate


# --- filters -----------------------------------------------------------------


def test_revenue_net_is_below_gross(page, shots):
    page.goto("/reports/revenue")
    assert page.locator("select[name=measure]").input_value() == "gross"
    gross = revenue_footer(page)
    show(page, measure="net")
    assert page.locator("section.table h2").inner_text().startswith("Net revenue by customer")
    net = revenue_footer(page)
    shots(page, "revenue-net")
    assert 0 < net[-1] < gross[-1]
    for n, g in zip(net, gross, strict=True):
        assert n <= g
    rows = download_csv(page, page.get_by_role("link", name="Download CSV"))
    assert [int(c) for c in rows[-1][1:]] == net


def test_revenue_year_filter_shows_that_year(page, shots):
    page.goto("/reports/revenue")
    this_year = int(page.locator("select[name=year]").input_value())
    assert this_year == date.today().year  # demo data covers it
    now = revenue_footer(page)
    last_year = str(this_year - 1)
    show(page, year=last_year)
    shots(page, "revenue-last-year")
    assert page.locator("section.table h2").inner_text().endswith(last_year)
    headings = page.locator("section.table thead th").all_inner_texts()
    assert headings[1] == f"Jan {last_year}"
    before = revenue_footer(page)
    assert before[-1] > 0 and before != now
    rows = download_csv(page, page.get_by_role("link", name="Download CSV"))
    assert [int(c) for c in rows[-1][1:]] == before


def test_revenue_for_one_ae_equals_that_ae_in_the_ae_report(page, shots):
    page.goto("/reports/revenue")
    year = page.locator("select[name=year]").input_value()
    everyone = revenue_footer(page)
    options = page.locator("select[name=ae] option").all_inner_texts()
    assert options[0] == "All" and len(options) > 2
    ae = options[1]
    show(page, ae=ae)
    shots(page, "revenue-one-ae")
    one = revenue_footer(page)
    assert 0 < one[-1] < everyone[-1]

    page.goto(f"/reports/ae?year={year}")
    for table in html_tables(page):
        if table["title"].startswith("Booked by month"):
            row = next(r for r in table["body"] if r[0] == ae)
            assert [money(c) for c in row[1:]] == one
        if table["title"].startswith(f"Year {year}"):
            row = next(r for r in table["body"] if r[0] == ae)
            assert money(row[1]) == one[-1]  # Booked


def test_language_report_net_below_gross(page, shots):
    page.goto("/reports/languages")
    gross = page.locator("section.table").first.locator("tfoot td").all_inner_texts()
    show(page, measure="net")
    shots(page, "languages-net")
    net = page.locator("section.table").first.locator("tfoot td").all_inner_texts()
    assert net[1] == gross[1]  # the same spots
    assert 0 < money(net[2]) < money(gross[2])


def test_ae_report_year_filter(page, shots):
    page.goto("/reports/ae")
    year = int(page.locator("select[name=year]").input_value())
    summary = html_tables(page)[0]
    assert summary["head"][4] == f"Booked {year - 1}"
    booked_last_year = money(summary["foot"][4])
    show(page, year=str(year - 1))
    shots(page, "ae-last-year")
    summary = html_tables(page)[0]
    assert summary["title"] == f"Year {year - 1}: booked against budget"
    assert money(summary["foot"][1]) == booked_last_year


# --- the charts --------------------------------------------------------------


def chart(page):
    """The page's chart: visible, named by its SVG title and description."""
    figure = page.locator("figure.chart")
    expect(figure).to_have_count(1)
    svg = figure.locator("svg")
    assert svg.is_visible()
    box = svg.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 80, box
    assert svg.get_attribute("role") == "img"
    title, desc = svg.get_attribute("aria-labelledby").split()
    assert svg.locator(f"title#{title}").text_content()
    assert svg.locator(f"desc#{desc}").text_content()
    assert figure.locator("figcaption").inner_text()
    # the whole figure is on screen for the screenshot
    figure.scroll_into_view_if_needed()
    return svg


def fills(locator) -> list[str]:
    """The fill colours the style sheet gives to these SVG shapes."""
    return locator.evaluate_all("shapes => shapes.map(s => getComputedStyle(s).fill)")


def test_revenue_chart_is_drawn_with_a_bar_per_month(page, shots):
    page.goto("/reports/revenue")
    chart(page)
    shots(page, "report-revenue-chart")
    svg = page.locator("figure.chart svg")
    assert svg.is_visible()
    box = svg.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 80, box
    bars = page.locator("figure.chart rect.bar")
    assert bars.count() == 12
    totals = revenue_footer(page)[:12]
    heights = []
    for i in range(12):
        bar = bars.nth(i)
        label, value = bar.locator("title").text_content().split(": ")
        assert money(value) == max(totals[i], 0), label
        heights.append(bar.bounding_box()["height"] if totals[i] > 0 else 0)
    assert max(heights) > 50
    # the tallest bar is the month with the highest total
    assert heights.index(max(heights)) == totals.index(max(totals))


def test_ae_chart_has_a_bar_per_ae_and_a_budget_mark(page, shots):
    page.goto("/reports/ae")
    svg = chart(page)
    shots(page, "report-ae-chart")
    summary = html_tables(page)[0]
    assert summary["head"][:4] == ["Account executive", "Booked", "Budget", "Pacing (% of budget)"]
    rows = svg.locator("g.ae-row")
    assert rows.count() == len(summary["body"]) > 1
    for i, cells in enumerate(summary["body"]):
        row = rows.nth(i)
        assert row.locator("rect.series-booked").count() == 1
        has_budget = money(cells[2]) > 0
        assert row.locator("line.mark-budget").count() == int(has_budget)
        pacing = row.locator("text.pacing").text_content()
        assert pacing == (cells[3] if has_budget else "no budget")
        assert row.locator("title").text_content().startswith(f"{cells[0]}: booked {cells[1]}")
    # the longest bar is the AE who booked most
    widths = [rows.nth(i).locator("rect").bounding_box()["width"] for i in range(rows.count())]
    booked = [money(r[1]) for r in summary["body"]]
    assert widths.index(max(widths)) == booked.index(max(booked))
    # booked is the same colour as the revenue report's bars
    booked_fill = set(fills(svg.locator("rect.series-booked")))
    assert len(booked_fill) == 1
    assert set(fills(svg.locator("line.mark-budget"))) != booked_fill
    page.goto("/reports/revenue")
    assert set(fills(page.locator("figure.chart rect.bar"))) == booked_fill


def test_language_chart_has_a_stacked_bar_per_month(page, shots):
    page.goto("/reports/languages")
    svg = chart(page)
    shots(page, "report-languages-chart")
    by_language = html_tables(page)[0]
    languages = [r[0] for r in by_language["body"] if money(r[2]) > 0]
    legend = svg.locator("g.legend text").all_text_contents()
    assert len(legend) == min(len(languages), 7)
    if len(languages) > 7:
        assert legend[-1].startswith("Other ")
    assert [t.split()[0] for t in legend[:6]] == languages[:6]
    months = svg.locator("g.month")
    assert months.count() == 12
    grid = svg.locator("line.grid")
    top = grid.last.bounding_box()["y"]
    bottom = grid.first.bounding_box()["y"]
    for i in range(12):
        segments = months.nth(i).locator("rect.segment")
        assert 0 < segments.count() <= len(legend)
        boxes = [segments.nth(k).bounding_box() for k in range(segments.count())]
        # each month's segments fill the bar from 0% to 100%
        span = max(b["y"] + b["height"] for b in boxes) - min(b["y"] for b in boxes)
        assert span == pytest.approx(bottom - top, abs=1.5)
    # a language has one colour in every month, and no two share one
    swatches = svg.locator("g.legend rect.swatch")
    colours = fills(swatches)
    assert len(set(colours)) == len(colours)
    for k in range(swatches.count()):
        css = swatches.nth(k).get_attribute("class").split()[1]
        assert set(fills(svg.locator(f"rect.segment.{css}"))) == {colours[k]}


def test_month_chart_has_a_cell_per_month_by_status(page, shots):
    page.goto("/reports/months")
    svg = chart(page)
    shots(page, "report-months-chart")
    table = html_tables(page)[0]
    assert table["head"][:2] == ["Month", "Status"]
    years = svg.locator("text.year").all_text_contents()
    assert years == sorted(years)
    cells = svg.locator("g.cell")
    assert cells.count() == 12 * len(years)
    closed = [r for r in table["body"] if r[1] == "closed"]
    with_data = [r for r in table["body"] if r[1] == "open" and money(r[3]) > 0]
    assert svg.locator("g.cell rect.status-closed").count() == len(closed)
    assert svg.locator("g.cell rect.status-open").count() == len(with_data)
    assert svg.locator("g.cell rect.status-empty").count() == cells.count() - len(closed) - len(with_data)
    # oldest first: the first cell is January of the first year
    assert cells.first.locator("text").text_content() == "Jan"
    assert cells.first.locator("title").text_content().startswith("Jan ")
    # closing the oldest month turns its cell (January of the first year)
    # closed, in the legend's colour for closed, and reopening turns it back
    closing = page.get_by_role("button", name=re.compile(r"^Close"))
    assert closing.count() == len(table["body"]) - len(closed)
    with page.expect_navigation():
        closing.last.click()
    try:
        svg = chart(page)
        first = svg.locator("g.cell").first
        assert first.locator("rect").get_attribute("class") == "status-closed"
        assert first.locator("title").text_content().endswith(": closed")
        assert svg.locator("g.cell rect.status-closed").count() == len(closed) + 1
        shots(page, "report-months-chart-closed")
        for status in ("closed", "open"):
            swatch = fills(svg.locator(f"g.legend rect.status-{status}"))
            cells = fills(svg.locator(f"g.cell rect.status-{status}"))
            assert set(cells) == set(swatch), status
        assert len(set(fills(svg.locator("g.legend rect.swatch")))) == 3
    finally:
        with page.expect_navigation():
            page.get_by_role("button", name=re.compile(r"^Reopen")).last.click()
    assert chart(page).locator("g.cell rect.status-closed").count() == len(closed)


# --- logging out -------------------------------------------------------------


def test_after_logout_back_does_not_show_a_report(visitor, shots):
    page = visitor.new_page()
    visitor.login(page, LEAVER)
    assert page.locator(".who").inner_text() == f"{LEAVER} (viewer)"
    page.goto("/reports/revenue")
    assert page.locator("h1").inner_text() == "Revenue by customer"
    page.get_by_role("button", name="Log out").click()
    page.wait_for_load_state()
    assert "/auth/login" in page.url
    assert page.locator("p.message.info").inner_text() == "You have logged out."
    shots(page, "logged-out")

    # Restored from the back/forward cache, the page fires no "load"
    # event: wait for the navigation only, then for what it shows.
    page.go_back(wait_until="commit")
    expect(
        page.locator("h1"), "Back after logging out shows the report again (is Cache-Control: no-store missing?)"
    ).to_have_text("Log in", timeout=5000)
    shots(page, "logged-out-back")
    assert page.locator("section.table").count() == 0
    page.reload()
    assert "/auth/login" in page.url
    assert page.locator("h1").inner_text() == "Log in"


# --- the watch itself --------------------------------------------------------


def test_a_csp_violation_would_be_caught(visitor):
    """The console/CSP watch is not vacuous: an inline style, which the
    policy forbids, is reported."""
    page = visitor.new_page()
    page.goto("/auth/login")
    page.evaluate("""() => document.body.insertAdjacentHTML(
        'beforeend', '<p style="color: red">inline</p>')""")
    page.wait_for_timeout(200)
    problems, visitor.problems = visitor.problems, []
    assert any("CSP violation" in p and "style-src" in p for p in problems), problems
