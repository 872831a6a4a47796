"""Report figures against the fixture in conftest.py, worked out by hand.

2025 gross, Trade excluded (whole dollars):
  Acme Foods:    Jan 1000 + 500 + 0 (bonus) = 1500, Feb 2000   -> 3500
  Bright Dental: Jan 300, Mar 700                               -> 1000
  months: Jan 1800, Feb 2000, Mar 700; year 4500
The 9999 Trade spot in Jan must never appear.
"""

import csv
import io
import re

import pytest

from .conftest import csrf_token


def cells(html: str, row_label: str) -> list[str]:
    """The cells of the first table row that starts with row_label."""
    match = re.search(r"<tr><td[^>]*>" + re.escape(row_label) + r"</td>(.*?)</tr>", html, re.S)
    assert match, row_label
    return re.findall(r"<td[^>]*>(.*?)</td>", match.group(1))


def table_csv(client, url) -> list[list[str]]:
    response = client.get(url)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def test_index_links_every_report(viewer):
    html = viewer.get("/reports/").get_data(as_text=True)
    for url in ("/reports/revenue", "/reports/ae", "/reports/languages", "/reports/months"):
        assert f'href="{url}"' in html
        assert viewer.get(url).status_code == 200


def test_revenue_gross(viewer):
    html = viewer.get("/reports/revenue?year=2025").get_data(as_text=True)
    acme = cells(html, "Acme Foods")
    assert acme[:3] == ["1,500", "2,000", "0"] and acme[-1] == "3,500"
    bright = cells(html, "Bright Dental")
    assert bright[:3] == ["300", "0", "700"] and bright[-1] == "1,000"
    total = cells(html, "Total")
    assert total[:3] == ["1,800", "2,000", "700"] and total[-1] == "4,500"
    assert "9,999" not in html and "11,799" not in html
    assert "<svg" in html and "1,800" in html


def test_revenue_net(viewer):
    html = viewer.get("/reports/revenue?year=2025&measure=net").get_data(as_text=True)
    assert cells(html, "Acme Foods")[-1] == "2,975"  # 850 + 425 + 1700
    assert cells(html, "Bright Dental")[-1] == "950"  # 285 + 665
    assert cells(html, "Total")[-1] == "3,925"


def test_revenue_filters(viewer):
    html = viewer.get("/reports/revenue?year=2025&ae=Bob").get_data(as_text=True)
    assert "Acme Foods" not in html.split("<tbody>")[1]
    assert cells(html, "Total")[-1] == "1,000"
    html = viewer.get("/reports/revenue?year=2025&market=LAX").get_data(as_text=True)
    assert cells(html, "Total")[-1] == "3,000"
    html = viewer.get("/reports/revenue?year=2025&revenue_type=Direct+Response").get_data(as_text=True)
    assert cells(html, "Total")[-1] == "1,000"


def test_revenue_trade_is_not_a_filter_choice(viewer):
    html = viewer.get("/reports/revenue?year=2025&revenue_type=Trade").get_data(as_text=True)
    assert "There is no revenue type &#39;Trade&#39;" in html
    assert cells(html, "Total")[-1] == "4,500"


def test_revenue_csv_has_the_figures_shown(viewer):
    rows = table_csv(viewer, "/reports/revenue?year=2025&format=csv")
    assert rows[0][:2] == ["Customer", "Jan 2025"] and rows[0][-1] == "Total"
    assert rows[1][:4] == ["Acme Foods", "1500", "2000", "0"]
    assert rows[1][-1] == "3500"
    assert rows[-1][0] == "Total" and rows[-1][-1] == "4500"
    assert len(rows) == 4


def test_prior_year(viewer):
    html = viewer.get("/reports/revenue?year=2024").get_data(as_text=True)
    assert cells(html, "Total")[-1] == "1,200"


@pytest.mark.parametrize("query", ["year=abc", "year=20251", "measure=profit", "format=pdf", "format=csv&table=nope"])
def test_bad_filter_is_400(viewer, query):
    response = viewer.get(f"/reports/revenue?{query}")
    assert response.status_code == 400
    assert b"must be" in response.data or b"no table" in response.data


def test_unknown_filter_value_is_ignored_with_message(viewer):
    html = viewer.get("/reports/revenue?year=2025&ae=Zed").get_data(as_text=True)
    assert "There is no account executive &#39;Zed&#39;" in html
    assert cells(html, "Total")[-1] == "4,500"


def test_ae_performance(viewer):
    html = viewer.get("/reports/ae?year=2025").get_data(as_text=True)
    # booked, budget, pacing, prior year booked, change on last year
    assert cells(html, "Alice") == ["3,500", "4,000", "87.5%", "800", "337.5%"]
    assert cells(html, "Bob") == ["1,000", "1,500", "66.7%", "400", "150.0%"]
    assert cells(html, "Total") == ["4,500", "5,500", "81.8%", "1,200", "275.0%"]


def test_ae_quarters_and_months_csv(viewer):
    rows = table_csv(viewer, "/reports/ae?year=2025&format=csv&table=quarters")
    assert rows[0][:4] == ["Account executive", "Q1 booked", "Q1 budget", "Q1 %"]
    alice = rows[1]
    assert alice[:4] == ["Alice", "3500", "4000", "87.5"]
    assert alice[4:7] == ["0", "0", ""]  # Q2: nothing booked, no budget
    rows = table_csv(viewer, "/reports/ae?year=2025&format=csv&table=pacing")
    assert rows[1][:4] == ["Alice", "75.0", "100.0", ""]
    assert rows[2][:4] == ["Bob", "60.0", "", "70.0"]


def test_languages_and_markets(viewer):
    rows = table_csv(viewer, "/reports/languages?year=2025&format=csv")
    assert rows[0] == ["Language", "Spots", "Gross revenue", "Share of revenue", "Average per spot"]
    assert rows[1:] == [
        ["M", "3", "3000", "66.7", "1000"],
        ["V", "2", "800", "17.8", "400"],
        ["C", "1", "700", "15.6", "700"],
        ["Total", "6", "4500", "100.0", "750"],
    ]
    rows = table_csv(viewer, "/reports/languages?year=2025&format=csv&table=market")
    assert rows[1:] == [
        ["LAX", "3", "3000", "66.7", "1000"],
        ["SFO", "2", "800", "17.8", "400"],
        ["NYC", "1", "700", "15.6", "700"],
        ["Total", "6", "4500", "100.0", "750"],
    ]
    rows = table_csv(viewer, "/reports/languages?year=2025&format=csv&table=grid")
    assert rows[0] == ["Language", "LAX", "SFO", "NYC", "Total"]
    assert ["M", "3000", "0", "0", "3000"] in rows
    assert ["V", "0", "800", "0", "800"] in rows
    assert rows[-1] == ["Total", "3000", "800", "700", "4500"]


def test_month_status(viewer):
    rows = table_csv(viewer, "/reports/months?format=csv")
    by_month = {r[0]: r for r in rows[1:]}
    # Jan 2025: 5 spots including the Trade one; gross/net without Trade
    assert by_month["Jan 2025"][1:2] == ["open"]
    assert by_month["Jan 2025"][3:6] == ["5", "1800", "1560"]
    assert by_month["Feb 2025"][3:6] == ["1", "2000", "1700"]
    assert by_month["Jan 2024"][3:6] == ["1", "800", "680"]
    assert by_month["Jan 2025"][8] == "fixture.csv"
    assert rows[-1][0] == "Total" and rows[-1][3] == "9"


def test_viewer_cannot_close_a_month(viewer):
    token = csrf_token(viewer, "/reports/months")
    response = viewer.post("/reports/months/2025-01/close", data={"csrf_token": token})
    assert response.status_code == 403
    assert b"Close</button>" not in viewer.get("/reports/months").data


def test_admin_closes_and_reopens_a_month(admin):
    token = csrf_token(admin, "/reports/months")
    response = admin.post("/reports/months/2025-01/close", data={"csrf_token": token})
    assert response.status_code == 302
    rows = table_csv(admin, "/reports/months?format=csv")
    assert {r[0]: r[1] for r in rows[1:]}["Jan 2025"] == "closed"
    admin.post("/reports/months/2025-01/reopen", data={"csrf_token": token})
    rows = table_csv(admin, "/reports/months?format=csv")
    assert {r[0]: r[1] for r in rows[1:]}["Jan 2025"] == "open"


def test_admin_close_needs_csrf_and_valid_month(admin):
    assert admin.post("/reports/months/2025-01/close").status_code == 400
    token = csrf_token(admin, "/reports/months")
    response = admin.post("/reports/months/Foo-99/close", data={"csrf_token": token})
    assert response.status_code == 400


def test_no_inline_scripts_or_styles(viewer):
    for url in (
        "/reports/revenue?year=2025",
        "/reports/ae?year=2025",
        "/reports/languages?year=2025",
        "/reports/months",
    ):
        html = viewer.get(url).get_data(as_text=True)
        assert "<script" not in html and "style=" not in html
        assert "<style" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


REPORT_URLS = ("/reports/revenue", "/reports/ae", "/reports/languages", "/reports/months")
ODD_VALUES = (
    "",
    " ",
    "0",
    "-1",
    "2025.0",
    "２０２５",
    "²⁰²⁵",
    "1e3",
    "None",
    "' OR 1=1 --",
    "<script>",
    "%00",
    "x" * 500,
    "Jan-25",
    "📺",
)


@pytest.mark.parametrize("url", REPORT_URLS)
def test_odd_parameters_are_never_a_server_error(viewer, url):
    for name in ("year", "measure", "ae", "revenue_type", "market", "format", "table"):
        for value in ODD_VALUES:
            response = viewer.get(url, query_string={name: value})
            assert response.status_code in (200, 400), (name, value)
            assert b"<script>" not in response.data


@pytest.mark.parametrize("month", ["Jan-²5", "２０２５-01", "2025-13", "x", "Jan-25", "2025-1", "+2025-01"])
def test_odd_month_in_url_is_400(admin, month):
    token = csrf_token(admin, "/reports/months")
    response = admin.post(f"/reports/months/{month}/close", data={"csrf_token": token})
    assert response.status_code == 400


def test_csv_download_defuses_formulas(tmp_path):
    from src.web import create_app

    from .conftest import SECRET, login, make_database

    path = tmp_path / "f.db"
    spot = (
        'X:=HYPERLINK("http://x")',
        "2025-01-06",
        "2025-01",
        '=HYPERLINK("http://x")',
        None,
        "Alice",
        "Internal Ad Sales",
        "COM",
        "M",
        "LAX",
        30,
        -5000,
        -5000,
        0,
        None,
    )
    make_database(path, spots=[spot], budgets=[])
    client = create_app({"DATABASE_PATH": str(path), "SECRET_KEY": SECRET}).test_client()
    login(client)
    rows = table_csv(client, "/reports/revenue?year=2025&format=csv")
    assert rows[1][0] == '\'=HYPERLINK("http://x")'
    assert rows[1][1] == "-50"  # numbers are left alone


def test_ae_year_over_year_by_quarter(viewer):
    rows = table_csv(viewer, "/reports/ae?year=2025&format=csv&table=yoy")
    assert rows[0][:4] == ["Account executive", "Q1 2025", "Q1 2024", "Q1 change"]
    assert rows[1][:4] == ["Alice", "3500", "800", "337.5"]
    assert rows[2][:4] == ["Bob", "1000", "400", "150.0"]
    assert rows[3][:7] == ["Total", "4500", "1200", "275.0", "0", "0", ""]


def test_reports_on_an_empty_database(tmp_path):
    from src.web import create_app

    from .conftest import SECRET, login, make_database

    path = tmp_path / "empty.db"
    make_database(path, spots=[], budgets=[])
    client = create_app({"DATABASE_PATH": str(path), "SECRET_KEY": SECRET}).test_client()
    login(client)
    for url in REPORT_URLS:
        response = client.get(url)
        assert response.status_code == 200, url
    assert b"No spots match." in client.get("/reports/revenue").data
    rows = table_csv(client, "/reports/revenue?format=csv")
    assert rows[-1][0] == "Total" and rows[-1][-1] == "0"


def test_a_month_is_named_with_its_full_year_end_to_end(tmp_path):
    """A typo'd 2206-03 next to 2006-03: the page, the form it posts, the
    CSV and the month closed are all the one the admin clicked."""
    from src import db
    from src.web import create_app

    from .conftest import SECRET, login, make_database

    path = tmp_path / "years.db"
    spots = [
        (f"B:{m}", f"{m}-10", m, "Acme", None, "Alice", "Internal Ad Sales", "COM", "M", "LAX", 30, 100, 100, 0, None)
        for m in ("2006-03", "2206-03")
    ]
    make_database(path, spots=spots, budgets=[])
    client = create_app({"DATABASE_PATH": str(path), "SECRET_KEY": SECRET}).test_client()
    login(client, "admin")
    html = client.get("/reports/months").get_data(as_text=True)
    actions = re.findall(r'<li>([^<]*?) \(open\)\s*<form[^>]*action="([^"]+)"', html)
    assert [name for name, _ in actions] == ["Mar 2206", "Mar 2006"]
    response = client.post(actions[0][1], data={"csrf_token": csrf_token(client, "/reports/months")})
    assert response.status_code == 302
    conn = db.connect(path)
    assert db.closed_months(conn) == {"2206-03"}
    conn.close()
    rows = table_csv(client, "/reports/months?format=csv")
    assert {r[0]: r[1] for r in rows[1:-1]} == {"Mar 2206": "closed", "Mar 2006": "open"}
    # The short spelling is ambiguous in a URL: refused, nothing changed.
    token = csrf_token(client, "/reports/months")
    assert client.post("/reports/months/Mar-06/close", data={"csrf_token": token}).status_code == 400
