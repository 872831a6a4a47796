"""Hostile input: requests without a session, report filters and URL parts
that try SQL, huge, mistyped, repeated, unicode and NUL values, hostile
login forms, and arbitrary import rows.

The hostile values are module-level lists so that their numbers can be
quoted; each test asserts how many requests or rows it tried.
"""

import csv
import io
import re
import tempfile
from pathlib import Path
from urllib.parse import quote

import pytest
from flask_wtf import FlaskForm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from src import db
from src.importer import NAMES, ImportFileError, validate_rows
from src.web import auth, create_app

from .conftest import PASSWORD, SECRET, Cli, csrf_token, dump, login, make_database

# --- the hostile values, by kind ------------------------------------------------

SQL_METACHARACTERS = [
    "' OR 1=1 --",
    '"; DROP TABLE spots; --',
    "2025; DELETE FROM spots",
    "2025' UNION SELECT username, password_hash, role FROM users --",
    "Alice' OR '1'='1",
    "%",
    "_",
    "\\",
    "'",
    "*/ SELECT 1; /*",
]
HUGE_VALUES = [
    "x" * 100_000,  # a 100 KB string
    str(10**30),
    "-" + str(10**30),
    "9" * 5_000,
    "1e308",
    "2025" * 25_000,  # 100 KB of digits
]
WRONG_TYPES = [
    "abc",  # letters for a year
    "-1",
    "-2025",
    "0",
    "2025.5",
    "0x7e9",
    "1e3",
    "",
    " ",
    "true",
    "null",
    "[]",
    "{}",
]
UNICODE_AND_NUL = [
    "\x00",
    "2025\x00",
    "Alice\x00' OR 1=1 --",
    "٢٠٢٥",  # Arabic-Indic digits: isdigit() is True
    "２０２５",  # full-width digits
    "²⁰²⁵",  # superscript digits
    "Ａｌｉｃｅ",
    "\u202egross",  # right-to-left override
    "Ali\u0301ce",  # combining accent
    "😀" * 1000,
    "\r\n\t",
]
MARKUP = [
    "<script>alert(1)</script>",
    '"><svg onload=alert(1)>',
    "javascript:alert(1)",
    '=HYPERLINK("http://evil.example")',
]
HOSTILE_VALUES = SQL_METACHARACTERS + HUGE_VALUES + WRONG_TYPES + UNICODE_AND_NUL + MARKUP

# Arrays via repeated parameters (and PHP-style names), as query strings.
REPEATED_PARAMS = [
    "year=2025&year=abc",
    "year=abc&year=2025",
    "year=2025&year=2024",
    "measure=gross&measure=profit",
    "measure=net&measure=net",
    "format=csv&format=html",
    "format=html&format=csv&table=nope",
    "ae=Alice&ae=Bob",
    "ae=Alice&ae=' OR 1=1 --",
    "market=LAX&market=SFO&market=",
    "table=customers&table=months&format=csv",
    "year[]=2025&year[]=2024",
    "year[0]=2025",
    "revenue_type[]=Trade",
]
# Query strings that are not valid UTF-8 or percent-encoding.
RAW_QUERY_STRINGS = [
    b"year=%ff%fe",
    b"year=\xff\xfe",
    b"ae=%c0%80",  # overlong NUL
    b"year=%00",
    b"year=%",
    b"year=%zz",
    b"measure=%e2%80%ae",
    b"&&&==&=",
]

# Report URLs and the query parameters each reads; "other" is one it does
# not read.
REPORT_PARAMS = {
    "/reports/": ["other"],
    "/reports/revenue": ["year", "measure", "ae", "revenue_type", "market", "format", "table", "other"],
    "/reports/ae": ["year", "format", "table", "other"],
    "/reports/languages": ["year", "measure", "format", "table", "other"],
    "/reports/months": ["format", "table", "other"],
}
FILTERS = {"year", "measure", "ae", "revenue_type", "market", "other"}

# Month values put into the admin routes' URL (/reports/months/<month>/...).
HOSTILE_MONTHS = HOSTILE_VALUES + ["Jan-25/../../close", "..", "Jan-25%00", "Jan-2025", "Foo-25", "2025-13"]

# Hostile login form fields (both user name and password are tried).
HOSTILE_LOGINS = HOSTILE_VALUES + ["admin' --", "admin'/*", "admin\x00", " admin", "ADMIN"]


# --- helpers ----------------------------------------------------------------------


def fingerprint(path) -> dict:
    """Row counts of every table and the money totals, to compare before
    and after (login_attempts is meant to change)."""
    conn = db.connect(path)
    try:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'login_attempts' ORDER BY name"
            )
        ]
        result = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}
        result["money"] = tuple(
            conn.execute("SELECT SUM(gross_rate), SUM(station_net), SUM(broker_fees) FROM spots").fetchone()
        )
        result["budgets"] = conn.execute("SELECT SUM(amount) FROM budgets").fetchone()[0]
        result["users"] = tuple(
            tuple(r) for r in conn.execute("SELECT username, password_hash, role, active FROM users")
        )
        return result
    finally:
        conn.close()


def data_dump(path) -> str:
    return "\n".join(line for line in dump(path).splitlines() if "login_attempts" not in line)


def close_all(response):
    response.get_data()
    response.close()
    return response


# --- without a session -------------------------------------------------------

PUBLIC = {"index", "static", "health.health", "auth.login"}
# Values for URL arguments (<month>): a valid one and hostile ones.
SWEEP_ARGUMENTS = ["Jan-25", "' OR 1=1 --", "x" * 1000]
SWEEP_QUERIES = ["", "?format=csv&table=customers", "?year=2025&ae=Alice"]


def test_every_route_needs_a_session_for_every_method(app, db_path):
    """Sweeps the URL map: every method of every rule, with no cookie at
    all and with an anonymous session holding a valid CSRF token."""
    before = data_dump(db_path)
    anonymous = app.test_client()
    token = csrf_token(anonymous)
    tried = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC:
            continue
        for value in SWEEP_ARGUMENTS:
            path = rule.build({arg: value for arg in rule.arguments})[1]
            for query in SWEEP_QUERIES:
                for method in sorted(rule.methods):
                    for client, data in ((app.test_client(), None), (anonymous, {"csrf_token": token})):
                        response = close_all(
                            client.open(path + query, method=method, data=None if method in ("GET", "HEAD") else data)
                        )
                        assert response.status_code in (302, 401), (method, path + query, response.status_code)
                        if response.status_code == 302:
                            assert response.headers["Location"].startswith("/auth/login"), (method, path)
                        assert b"Acme" not in response.data
                        tried += 1
    rules = [r for r in app.url_map.iter_rules() if r.endpoint not in PUBLIC]
    expected = sum(len(r.methods) for r in rules) * len(SWEEP_ARGUMENTS) * len(SWEEP_QUERIES) * 2
    assert tried == expected
    # 10 rules, 26 methods: 26 x 3 arguments x 3 queries x 2 clients
    assert tried == 468
    assert data_dump(db_path) == before


def test_public_routes_are_exactly_these(app):
    assert auth.PUBLIC_ENDPOINTS == PUBLIC
    assert {r.rule for r in app.url_map.iter_rules() if r.endpoint in PUBLIC} == {
        "/",
        "/static/<path:filename>",
        "/health",
        "/auth/login",
    }


# --- report filters --------------------------------------------------------------


def check_response(response, url, value=None):
    assert response.status_code in (200, 400), (url, response.status_code)
    assert response.mimetype in ("text/html", "text/csv"), url
    if value is not None and response.mimetype == "text/html":
        text = response.get_data(as_text=True)
        for bad in ("<script>", "<svg onload", 'href="javascript:'):
            if bad in value:
                assert bad not in text, url


def test_report_filters_with_hostile_values(admin, db_path):
    before = fingerprint(db_path)
    dumped = data_dump(db_path)
    csv_urls = [
        "/reports/revenue?year=2025&format=csv",
        "/reports/ae?year=2025&format=csv",
        "/reports/months?format=csv",
    ]
    figures = [admin.get(url).data for url in csv_urls]
    tried = 0
    for url, params in REPORT_PARAMS.items():
        for param in params:
            for value in HOSTILE_VALUES:
                query = {param: value}
                if param != "year" and url != "/reports/":
                    query["year"] = "2025"  # so that there is data to filter
                check_response(admin.get(url, query_string=query), url, value)
                tried += 1
                if param in FILTERS and url != "/reports/":
                    query.update(format="csv")
                    check_response(admin.get(url, query_string=query), url)
                    tried += 1
    assert len(HOSTILE_VALUES) == 44
    # 21 parameters x 44 values, and the 12 filters again as CSV
    assert tried == (21 + 12) * 44 == 1452
    assert fingerprint(db_path) == before
    assert data_dump(db_path) == dumped
    assert [admin.get(url).data for url in csv_urls] == figures


def test_year_that_is_not_a_plain_year_is_a_400(admin):
    for value in (
        SQL_METACHARACTERS + HUGE_VALUES + UNICODE_AND_NUL + ["abc", "-1", "-2025", "0", "2025.5", "0x7e9", "1e3"]
    ):
        if not value.strip():
            continue  # blank is "not given": this year
        response = admin.get("/reports/revenue", query_string={"year": value})
        assert response.status_code == 400, repr(value[:20])
        assert b"year must be a year like" in response.data


def test_repeated_and_malformed_query_strings(admin, db_path):
    before = fingerprint(db_path)
    tried = 0
    for url in REPORT_PARAMS:
        for query in REPEATED_PARAMS:
            check_response(admin.get(f"{url}?{query}"), url)
            tried += 1
        for raw in RAW_QUERY_STRINGS:
            check_response(admin.get(url, environ_overrides={"QUERY_STRING": raw.decode("latin-1")}), url)
            tried += 1
    assert tried == 5 * (14 + 8) == 110
    assert fingerprint(db_path) == before


def test_hostile_month_in_admin_urls(admin, db_path):
    """Admin routes take the month from the URL: a 400 (not a month) or a
    404 (no such URL), never a change."""
    conn = db.connect(db_path)
    db.close_month(conn, "2025-02", "admin")
    conn.close()
    before = data_dump(db_path)
    token = csrf_token(admin, "/reports/months")
    tried = 0
    for value in HOSTILE_MONTHS:
        for action in ("close", "reopen"):
            url = f"/reports/months/{quote(value, safe='/')}/{action}"
            response = admin.post(url, data={"csrf_token": token})
            assert response.status_code in (400, 404), (repr(value[:20]), response.status_code)
            tried += 1
    assert tried == 2 * len(HOSTILE_MONTHS) == 100
    assert data_dump(db_path) == before


# --- the login form ----------------------------------------------------------------


def test_hostile_login_forms(db_path, monkeypatch):
    # unknown names check a dummy hash; a cheap one keeps the test quick
    monkeypatch.setattr(
        auth,
        "_dummy_hash",
        lambda: "pbkdf2:sha256:1000$salt$0000000000000000000000000000000000000000000000000000000000000000",
    )
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_PATH": str(db_path),
            "SECRET_KEY": SECRET,
            "LOGIN_MAX_FAILURES_PER_USER": 10**6,
            "LOGIN_MAX_FAILURES_PER_ADDRESS": 10**6,
        }
    )
    client = app.test_client()
    before = fingerprint(db_path)
    tried = 0
    for value in HOSTILE_LOGINS:
        for fields in ({"username": value, "password": "x" * 8}, {"username": "admin", "password": value}):
            response = client.post("/auth/login", data={**fields, "csrf_token": csrf_token(client)})
            # 400: the form refuses it (empty, too long); 401: wrong
            assert response.status_code in (400, 401), (repr(value[:20]), response.status_code)
            assert client.get("/reports/").status_code == 302
            tried += 1
    assert tried == 2 * len(HOSTILE_LOGINS) == 98
    assert fingerprint(db_path) == before


RAW_FORM_BODIES = [
    b"username=\xff\xfe&password=x",
    b"username=admin%00&password=%ff",
    b"username=%c0%80&password=%",
    b"\x00\x00\x00",
    b"username=a&username=b&password=c&password=d",
]


def test_raw_form_bodies(client):
    token = csrf_token(client)
    tried = 0
    for body in RAW_FORM_BODIES:
        for extra in (b"", b"&csrf_token=" + token.encode()):
            response = client.post("/auth/login", data=body + extra, content_type="application/x-www-form-urlencoded")
            assert response.status_code in (400, 401), (body, extra)
            tried += 1
    assert tried == 10


def test_oversized_login_body_is_refused(client):
    response = client.post("/auth/login", data={"username": "x" * (2 * 1024 * 1024)})
    assert response.status_code == 413


# --- where a login leads (next) ----------------------------------------------------

# None of these may be followed: urlsplit raises on some ("//[",
# "http://[::1", a fullwidth slash), werkzeug refuses CR/LF in a Location
# header, and browsers drop tabs and newlines ("/\t/evil" is "//evil") and
# read a backslash as a slash.
HOSTILE_NEXT = [
    "//[",
    "http://[::1",
    "//a\uff0fb@c",
    "/\r\nSet-Cookie: planted=1",
    "/\n",
    "/a\rb",
    "/\t/evil.example",
    "/a\tb",
    "/\x00",
    "/a\x00b",
    "/\x7f",
    "/\x0b",
    "/\x1b[31m",
    "/caf\xe9",
    "/\u2028",
    "/\uff0fevil.example",
    "/\\evil",
    "\\/evil",
    "/\\/evil",
    "//evil.example",
    "///evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    " /reports/",
    "/ /x",
    "/reports/ ",
    "reports/ae",
    "/" + "a" * 100_000,
    "/reports/" + "x" * 5_000,
]
SAFE_NEXT = ["/reports/ae", "/reports/revenue?year=2025&ae=O%27Brien", "/reports/months#top", "/"]


def test_hostile_next_after_login(app, db_path):
    """A valid login with a hostile ``next`` goes to the reports index,
    on POST and when already logged in (GET); a local path is followed."""
    tried = 0
    logged_in = app.test_client()
    assert login(logged_in).status_code == 302
    for value in HOSTILE_NEXT + HOSTILE_VALUES + SAFE_NEXT:
        expected = value if value in SAFE_NEXT else "/reports/"
        client = app.test_client()
        response = client.post(
            "/auth/login",
            query_string={"next": value},
            data={"username": "viewer", "password": PASSWORD, "csrf_token": csrf_token(client)},
        )
        assert response.status_code == 302, repr(value[:20])
        assert response.headers["Location"] == expected, repr(value[:20])
        assert client.get("/reports/").status_code == 200
        response = logged_in.get("/auth/login", query_string={"next": value})
        assert response.status_code == 302, repr(value[:20])
        assert response.headers["Location"] == expected, repr(value[:20])
        tried += 2
    assert tried == 2 * (29 + 44 + 4) == 154


# --- every form, with a field that is not text ---------------------------------


def form_on(page, action):
    """The URL of the first form on ``page`` whose action ends in
    ``action``, as the page shows it to the client."""

    def find(client):
        text = client.get(page).get_data(as_text=True)
        return re.search(f'action="([^"]*{action})"', text).group(1)

    return find


# Every form of the application (found as the subclasses of FlaskForm):
# where it posts (or how to find that), who is logged in (None: nobody) and
# valid text for its fields besides the CSRF token.
FORM_POSTS = {
    "src.web.auth.LoginForm": [("/auth/login", None, {"username": "admin", "password": PASSWORD})],
    "src.web.reports.months.ActionForm": [
        (form_on("/reports/months", "/close"), "admin", {}),
        (form_on("/reports/months", "/reopen"), "admin", {}),
    ],
    "src.web.admin.UnlockForm": [("/admin/users/unlock", "admin", {"username": "viewer"})],
}
# Forms written by hand in the templates: url, who, fields.
OTHER_FORMS = [("/auth/logout", "admin", {"csrf_token"})]
# JSON bodies are form data for Flask-WTF too; these values are not text.
NOT_TEXT = [5, True, {"text": "x"}, [1]]


def app_forms() -> dict:
    """The application's FlaskForm classes, by module and name."""
    found, todo = {}, [FlaskForm]
    while todo:
        for form in todo.pop().__subclasses__():
            todo.append(form)
            if form.__module__.startswith("src."):
                found[f"{form.__module__}.{form.__qualname__}"] = form
    return found


def test_every_form_field_sent_as_a_file_or_not_text(app, db_path):
    """Each field of each form in turn sent as a multipart file, and as a
    JSON value that is not text, the others valid: always 400, nothing
    changed, nobody logged in or out.  Then the valid text is accepted."""
    conn = db.connect(db_path)
    db.close_month(conn, "2025-02", "admin")
    conn.close()
    assert (
        login(app.test_client(), "viewer", "wrong password").status_code == 401
    )  # a failure for the unlock form to clear
    clients = {None: app.test_client(), "admin": app.test_client()}
    assert login(clients["admin"], "admin").status_code == 302
    tokens = {None: csrf_token(clients[None]), "admin": csrf_token(clients["admin"], "/reports/")}
    forms = app_forms()
    assert set(forms) == set(FORM_POSTS), "add the new form to FORM_POSTS"
    posts = []
    for name, form in forms.items():
        with app.test_request_context():
            fields = {field.name for field in form()}
        posts += [
            (url(clients[who]) if callable(url) else url, who, fields, text) for url, who, text in FORM_POSTS[name]
        ]
    posts += [(url, who, fields, {}) for url, who, fields in OTHER_FORMS]
    before = dump(db_path)
    tried = 0
    for url, who, fields, text in posts:
        client, token = clients[who], tokens[who]
        valid = {**text, "csrf_token": token}
        assert set(valid) == fields, url
        for field in sorted(fields):
            as_file = (io.BytesIO(valid[field].encode()), "field.txt")
            requests = [dict(data={**valid, field: as_file})]
            for value in NOT_TEXT:
                body = {**valid, field: value}
                if field == "csrf_token":  # the token is only in the body
                    requests.append(dict(json=body))
                else:
                    requests.append(dict(json=body, headers={"X-CSRFToken": token}))
            for request in requests:
                response = client.post(url, **request)
                assert response.status_code == 400, (url, field, request)
                tried += 1
        assert (clients[None].get("/reports/").status_code, clients["admin"].get("/reports/").status_code) == (302, 200)
    assert tried == (3 + 1 + 1 + 2 + 1) * (1 + len(NOT_TEXT)) == 40
    assert dump(db_path) == before
    for url, who, _, text in posts:
        response = clients[who].post(url, data={**text, "csrf_token": tokens[who]})
        assert response.status_code == 302, url
    assert dump(db_path) != before


# --- import rows (property-based) ------------------------------------------------------

VALIDATOR_EXAMPLES = 500
IMPORT_EXAMPLES = 60

any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
MONEY = [
    "1000.00",
    "1,234.50",
    "$1,234.50",
    "(12.00)",
    "-12",
    "0",
    "",
    "1e308",
    "-1e308",
    "1e15",
    "1e9",
    "nan",
    "inf",
    "1,00x",
    "$",
    "()",
]
PLAUSIBLE = {
    "bill_code": ["A1:Acme Foods", "Direct:Bright Dental", ":", "A1:", ""],
    "air_date": ["2025-01-06", "01/06/2025", "1/6/25", "2025-02-30", "20250106", "0001-01-01", "9999-12-31", ""],
    "broadcast_month": ["Jan-25", "2025-01", "jan-25", "Feb-2025", "13-25", "0000-01", "9999-12", ""],
    "customer": ["Acme Foods", "  acme  FOODS ", "", "=cmd"],
    "revenue_type": ["Internal Ad Sales", "Trade", "TRADE", "", " "],
    "length": ["30", "0:30", "1:00:00", "-5", "99999999999999999999", "1:2:3:4", ""],
    "gross_rate": MONEY,
    "station_net": MONEY,
    "broker_fees": MONEY,
}


def cell(name):
    plausible = PLAUSIBLE.get(name)
    return any_text if plausible is None else st.one_of(st.sampled_from(plausible), any_text)


good_width_row = st.tuples(*(cell(n) for n in NAMES)).map(list)
any_row = st.one_of(good_width_row, good_width_row, good_width_row, st.lists(any_text, max_size=20))
row_lists = st.lists(any_row, max_size=8)


def check_validated(rows):
    """The validator's contract for ``rows`` (rows 2, 3, ...)."""
    numbered = list(enumerate(rows, start=2))
    try:
        good = validate_rows(numbered)
    except ImportFileError as exc:
        assert exc.errors and exc.total == len(exc.errors)
        if exc.errors == ["the file has no data rows"]:
            assert not rows
            return None
        bad_lines = set()
        for message in exc.errors:
            assert message.startswith("row "), message
            number, _, text = message[4:].partition(": ")
            assert int(number) in range(2, len(rows) + 2) and text, message
            bad_lines.add(int(number))
        # exactly the rows that are invalid on their own are reported
        for line, row in numbered:
            try:
                validate_rows([(line, row)])
                alone = True
            except ImportFileError:
                alone = False
            assert alone == (line not in bad_lines), (line, row)
        return exc
    assert len(good) == len(rows)
    for spot in good:
        assert len(spot) == len(db.SPOT_COLUMNS)
        assert spot[0] and spot[3] and spot[6]
        assert len(spot[1]) == 10 and spot[1][4] == spot[1][7] == "-"
        assert len(spot[2]) == 7 and spot[2][4] == "-"
        assert spot[10] is None or 0 <= spot[10] <= 24 * 3600
        for money in spot[11:14]:
            assert type(money) is int and abs(money) <= 10**11
    return good


@settings(max_examples=VALIDATOR_EXAMPLES, deadline=None)
@given(row_lists)
def test_validator_never_crashes(rows):
    check_validated(rows)


@pytest.mark.parametrize("text", ["1e308", "-1e308", "1e12", "1e300", "99999999999999999999"])
def test_enormous_money_is_a_row_error(text):
    row = ["A:B", "2025-01-06", "Jan-25", "", "", "", "X", "", "", "", "", text, "1", "", ""]
    with pytest.raises(ImportFileError) as error:
        validate_rows([(2, row)])
    assert error.value.errors == [f"row 2: gross_rate {text!r} is too large (at most 1,000,000,000.00 either way)"]


@settings(max_examples=IMPORT_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(row_lists)
def test_import_of_arbitrary_rows_writes_nothing_on_error(rows):
    """The whole command: a CSV of arbitrary rows either imports or exits 1
    listing row problems, and then the database and DATA_PATH are
    unchanged."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = tmp / "db.sqlite"
        make_database(path)
        data_dir = tmp / "imports"
        data_dir.mkdir()
        source = tmp / "rows.csv"
        with source.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(NAMES)
            writer.writerows(rows)
        before = dump(path)
        cli = Cli({"DATABASE_PATH": str(path), "DATA_PATH": str(data_dir), "CTV_BOOKEDBIZ_ENV": None})
        result = cli("import", source)
        assert result.exit_code in (0, 1), result.output
        if result.exit_code == 1:
            assert "nothing was imported" in result.output
            assert dump(path) == before
            assert list(data_dir.iterdir()) == []
        else:
            assert "imported" in result.output
            assert len(list(data_dir.iterdir())) == 1
