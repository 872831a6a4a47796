"""Login throttling, security headers, session cookies, logout, roles."""

import re

import pytest
from werkzeug.security import generate_password_hash

from src import db
from src.web import auth, create_app

from .conftest import PASSWORD, SECRET, csrf_token, login

WRONG = "wrong password!"


def attempts(db_path) -> list:
    conn = db.connect(db_path)
    try:
        return [tuple(r) for r in conn.execute("SELECT username, address FROM login_attempts ORDER BY id")]
    finally:
        conn.close()


def add_user(db_path, name, role):
    conn = db.connect(db_path)
    try:
        db.add_user(conn, name, generate_password_hash(PASSWORD, "pbkdf2:sha256:1000"), role)
    finally:
        conn.close()


class Clock:
    """Replaces time.time() in src.web.auth."""

    def __init__(self, monkeypatch, start=1_800_000_000.0):
        self.now = start
        monkeypatch.setattr(auth.time, "time", lambda: self.now)


@pytest.fixture
def clock(monkeypatch):
    return Clock(monkeypatch)


# --- login throttling ----------------------------------------------------------


def test_fifth_failure_locks_the_user_name_without_checking_the_password(client, db_path, clock, monkeypatch):
    for _ in range(5):
        assert login(client, "viewer", WRONG).status_code == 401
    checked = []
    monkeypatch.setattr(auth, "check_password_hash", lambda *a: checked.append(a) or True)
    refused = login(client, "viewer", PASSWORD)  # even the right password
    assert refused.status_code == 429
    assert checked == []  # the password was not even looked at
    assert refused.headers["Retry-After"] == "900"
    page = refused.get_data(as_text=True)
    assert "Too many failed logins" in page and "15 minute(s)" in page
    assert client.get("/reports/").status_code == 302
    # the same answer for a name that does not exist
    for _ in range(5):
        login(client, "nobody", WRONG)
    unknown = login(client, "nobody", WRONG)
    assert unknown.status_code == 429

    def body(response):
        return response.get_data(as_text=True).split('name="csrf_token"')[0]

    assert body(unknown) == body(refused)
    assert unknown.headers["Retry-After"] == refused.headers["Retry-After"]


def test_lock_lifts_when_the_window_passes(client, db_path, clock):
    for _ in range(5):
        login(client, "viewer", WRONG)
        clock.now += 60  # failures at 0, 60, ..., 240 s
    assert login(client, "viewer", PASSWORD).status_code == 429
    clock.now = 1_800_000_000.0 + 899
    response = login(client, "viewer", PASSWORD)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    clock.now += 1  # the first failure is 15 minutes old: 4 remain
    assert login(client, "viewer", PASSWORD).status_code == 302
    assert client.get("/reports/").status_code == 200
    # old rows are pruned, the user's failures cleared by the login
    assert attempts(db_path) == []


def test_name_is_matched_trimmed_and_ignoring_case(client, clock):
    for name in ("viewer", "Viewer", " VIEWER ", "viewer", "vIeWeR"):
        assert login(client, name, WRONG).status_code == 401
    assert login(client, "viewer", PASSWORD).status_code == 429


def test_other_names_are_not_locked(client, clock):
    for _ in range(5):
        login(client, "viewer", WRONG)
    assert login(client, "admin", PASSWORD).status_code == 302


def test_success_clears_only_the_users_own_counter(client, db_path, clock):
    for _ in range(4):
        login(client, "viewer", WRONG)
        login(client, "admin", WRONG)
    assert login(client, "viewer", PASSWORD).status_code == 302
    assert attempts(db_path) == [("admin", "127.0.0.1")] * 4


def test_address_limit_across_user_names(app, client, db_path, clock):
    for i in range(20):
        assert login(client, f"guess{i}", WRONG).status_code == 401
    refused = login(client, "viewer", PASSWORD)
    assert refused.status_code == 429
    # another address is not affected
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    assert login(other, "viewer", PASSWORD).status_code == 302


def test_forwarded_for_header_does_not_change_the_address(client, db_path, clock):
    """The application uses the connection's address (REMOTE_ADDR) only;
    a client cannot escape the address limit with X-Forwarded-For."""
    for i in range(20):
        client.post(
            "/auth/login",
            headers={"X-Forwarded-For": f"10.0.0.{i}"},
            data={"username": f"guess{i}", "password": WRONG, "csrf_token": csrf_token(client)},
        )
    assert {a for _, a in attempts(db_path)} == {"127.0.0.1"}
    response = client.post(
        "/auth/login",
        headers={"X-Forwarded-For": "10.9.9.9"},
        data={"username": "viewer", "password": PASSWORD, "csrf_token": csrf_token(client)},
    )
    assert response.status_code == 429


def test_limits_hold_across_processes(db_path, clock):
    """Two applications (two workers, or before and after a restart) share
    the counts through the database."""
    first = create_app({"TESTING": True, "DATABASE_PATH": str(db_path), "SECRET_KEY": SECRET}).test_client()
    for _ in range(3):
        login(first, "viewer", WRONG)
    second = create_app({"TESTING": True, "DATABASE_PATH": str(db_path), "SECRET_KEY": SECRET}).test_client()
    for _ in range(2):
        assert login(second, "viewer", WRONG).status_code == 401
    assert login(second, "viewer", PASSWORD).status_code == 429
    assert login(first, "viewer", PASSWORD).status_code == 429


def test_limits_are_configurable(db_path, clock):
    client = create_app(
        {
            "TESTING": True,
            "DATABASE_PATH": str(db_path),
            "SECRET_KEY": SECRET,
            "LOGIN_MAX_FAILURES_PER_USER": 2,
            "LOGIN_FAILURE_WINDOW_SECONDS": 60,
        }
    ).test_client()
    login(client, "viewer", WRONG)
    login(client, "viewer", WRONG)
    response = login(client, "viewer", PASSWORD)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "60"


def test_form_errors_are_not_counted(client, db_path):
    client.post("/auth/login", data={"username": "viewer", "password": "x"})
    login(client, "", "")
    assert attempts(db_path) == []


def test_failed_login_is_logged_without_the_name(client, caplog, clock):
    login(client, "my password by mistake", WRONG)
    assert "failed login from 127.0.0.1" in caplog.text
    assert "my password by mistake" not in caplog.text


def test_upgrade_from_version_1_gives_users_a_nonce(tmp_path):
    """An existing database: `db upgrade` adds the nonce and the attempts
    table; sessions from before the upgrade ("id" without a nonce) end."""
    from .conftest import Cli

    path = tmp_path / "v1.db"
    conn = db.connect(path, create=True)
    conn.executescript(f"BEGIN; {db.MIGRATIONS[0]} PRAGMA user_version = 1; COMMIT;")
    for name in ("ann", "ben"):
        conn.execute(
            "INSERT INTO users (username, password_hash, role, created_at) VALUES (?, 'x', 'viewer', 'now')", (name,)
        )
    conn.close()
    cli = Cli({"DATABASE_PATH": str(path), "CTV_BOOKEDBIZ_ENV": None})
    result = cli("db", "upgrade")
    assert result.output == (f"schema upgraded from version 1 to {db.LATEST_VERSION}\n")
    assert cli("db", "upgrade").output == (f"schema up to date at version {db.LATEST_VERSION}\n")
    conn = db.connect(path)
    nonces = [r[0] for r in conn.execute("SELECT session_nonce FROM users")]
    assert conn.execute("SELECT COUNT(*) FROM login_attempts").fetchone()[0] == 0
    conn.close()
    assert len(set(nonces)) == 2
    assert all(re.fullmatch("[0-9a-f]{32}", n) for n in nonces)


# --- security headers ------------------------------------------------------------

HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def all_pages(client) -> dict[str, object]:
    """Every page and CSV download a logged-in admin can see."""
    urls = ["/auth/login", "/health", "/", "/nowhere", "/static/style.css"]
    login(client, "admin")
    urls += [
        "/reports/",
        "/reports/revenue?year=2025",
        "/reports/ae?year=2025",
        "/reports/languages?year=2025",
        "/reports/months",
        "/reports/revenue?year=abc",
        "/reports/revenue?year=2025&format=csv&table=customers",
        "/reports/months?format=csv",
    ]
    pages = {}
    for url in urls:
        response = client.get(url)
        response.get_data()
        response.close()  # static files are open files
        pages[url] = response
    return pages


def test_security_headers_on_every_response(client):
    for url, response in all_pages(client).items():
        for name, value in HEADERS.items():
            assert response.headers[name] == value, (url, name)
        csp = response.headers["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["default-src"] == "'none'"
        assert directives["style-src"] == "'self'"
        assert directives["img-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'"
        assert "unsafe" not in csp
        if url.startswith("/static/"):
            assert "no-store" not in response.headers.get("Cache-Control", "")
        else:
            assert response.headers["Cache-Control"] == "no-store", url
    # a POST answer and an error page too
    token = csrf_token(client, "/reports/months")
    for response in (
        client.post("/reports/months/Jan-25/close", data={"csrf_token": token}),
        client.post("/reports/months/Jan-25/reopen"),
    ):
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Cache-Control"] == "no-store"


def test_pages_satisfy_the_content_security_policy(client):
    """No scripts, no inline styles or event handlers, and every URL in a
    page is on this site (the policy would block anything else)."""
    for url, response in all_pages(client).items():
        if response.mimetype != "text/html":
            continue
        page = response.get_data(as_text=True)
        assert not re.search(r"<script|<style|<iframe|<object|<embed", page, re.I), url
        assert not re.search(r"\sstyle\s*=|\son[a-z]+\s*=", page, re.I), url
        assert "javascript:" not in page.lower(), url
        for link in re.findall(r'(?:href|src|action)="([^"]*)"', page):
            assert link == "" or (link.startswith("/") and not link.startswith("//")), (url, link)
        for sheet in re.findall(r'<link[^>]*href="([^"]+)"', page):
            assert sheet.startswith("/static/"), (url, sheet)


# --- session cookie ----------------------------------------------------------------


def session_cookie(response) -> str:
    [cookie] = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("ctv_bookedbiz_session=")]
    return cookie


def test_session_cookie_is_httponly_lax_and_expires(client):
    cookie = session_cookie(login(client))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Expires=" in cookie and "Secure" not in cookie


def test_secure_cookie_when_configured(db_path):
    client = create_app(
        {"TESTING": True, "DATABASE_PATH": str(db_path), "SECRET_KEY": SECRET, "SESSION_COOKIE_SECURE": True}
    ).test_client()
    client.get("/auth/login", base_url="https://localhost")
    response = client.post(
        "/auth/login",
        base_url="https://localhost",
        data={"username": "viewer", "password": PASSWORD, "csrf_token": csrf_token(client)},
    )
    assert "; Secure" in session_cookie(response)


def test_session_ends_twelve_hours_after_login_even_if_active(client, clock):
    login(client)
    for _ in range(11):
        clock.now += 3600
        assert client.get("/reports/").status_code == 200
    clock.now += 3600
    assert client.get("/reports/").status_code == 302


def test_session_without_login_time_is_not_accepted(client):
    login(client)
    with client.session_transaction() as session:
        del session["login_at"]
    assert client.get("/reports/").status_code == 302


def test_session_id_names_the_nonce(client, db_path):
    login(client)
    conn = db.connect(db_path)
    row = db.get_user(conn, username="viewer")
    conn.close()
    with client.session_transaction() as session:
        assert session["_user_id"] == f"{row['id']}:{row['session_nonce']}"
        assert len(row["session_nonce"]) == 32


@pytest.mark.parametrize(
    "user_id", ["2", "2:", ":abc", "x:abc", "9" * 40 + ":abc", "9" * 5000 + ":abc", "2:wrong", "2:\u00e9"]
)
def test_forged_session_ids_are_not_accepted(client, user_id):
    """Only the secret signs cookies, but the loader does not trust them
    either."""
    login(client)
    with client.session_transaction() as session:
        session["_user_id"] = user_id
    assert client.get("/reports/").status_code == 302


# --- logout ---------------------------------------------------------------------------


def logout(client):
    return client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/reports/")})


def test_logout_clears_the_cookie(viewer):
    response = logout(viewer)
    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/login?logged_out=1"
    cookie = session_cookie(response)
    assert cookie.startswith("ctv_bookedbiz_session=;")
    assert "Expires=Thu, 01 Jan 1970" in cookie
    assert "You have logged out." in viewer.get(response.headers["Location"]).get_data(as_text=True)
    assert viewer.get("/reports/").status_code == 302


def test_replayed_cookie_after_logout_is_refused(app, viewer):
    stolen = viewer.get_cookie("ctv_bookedbiz_session").value
    assert viewer.get("/reports/revenue").status_code == 200
    logout(viewer)
    replay = app.test_client()
    replay.set_cookie("ctv_bookedbiz_session", stolen)
    response = replay.get("/reports/revenue")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login")
    assert replay.get("/reports/revenue?format=csv").status_code == 302


def test_logout_ends_the_users_other_sessions(app, viewer):
    other = app.test_client()
    login(other)
    assert other.get("/reports/").status_code == 200
    logout(viewer)
    assert other.get("/reports/").status_code == 302


@pytest.mark.parametrize(
    "change",
    [
        {"password_hash": generate_password_hash("another password")},
        {"active": 0},
    ],
)
def test_new_password_or_disabling_ends_sessions(app, viewer, db_path, change):
    stolen = viewer.get_cookie("ctv_bookedbiz_session").value
    conn = db.connect(db_path)
    db.update_user(conn, "viewer", **change)
    conn.close()
    assert viewer.get("/reports/").status_code == 302
    replay = app.test_client()
    replay.set_cookie("ctv_bookedbiz_session", stolen)
    assert replay.get("/reports/").status_code == 302


def test_role_change_keeps_the_session_with_the_new_role(viewer, db_path):
    conn = db.connect(db_path)
    db.update_user(conn, "viewer", role="admin")
    conn.close()
    page = viewer.get("/reports/months").get_data(as_text=True)
    assert "Close or reopen a month" in page


def test_logout_without_session_goes_to_login(client):
    response = client.post("/auth/logout")
    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/login"


def test_logout_needs_csrf(viewer):
    assert viewer.post("/auth/logout").status_code == 400
    assert viewer.get("/reports/").status_code == 200


def test_login_starts_a_fresh_session(client):
    client.get("/auth/login")
    with client.session_transaction() as session:
        session["planted"] = "by someone else"
    login(client)
    with client.session_transaction() as session:
        assert "planted" not in session


# --- roles --------------------------------------------------------------------------------

NON_ADMIN_ROLES = ("viewer", "ae", "management")


def admin_rules(app):
    return [
        rule for rule in app.url_map.iter_rules() if getattr(app.view_functions[rule.endpoint], "admin_only", False)
    ]


def test_every_changing_route_is_admin_only(app):
    """A new route that changes something must be admin_required (or be
    added here with a reason)."""
    not_changing = {"auth.login", "auth.logout"}
    for rule in app.url_map.iter_rules():
        if rule.methods - {"GET", "HEAD", "OPTIONS"} and rule.endpoint not in not_changing:
            assert getattr(app.view_functions[rule.endpoint], "admin_only", False), rule.endpoint
    assert {r.endpoint for r in admin_rules(app)} == {
        "reports.close_month",
        "reports.reopen_month",
        "admin.users",
        "admin.unlock",
    }


@pytest.mark.parametrize("role", NON_ADMIN_ROLES)
def test_non_admins_get_403_from_every_admin_route(app, client, db_path, role):
    from .conftest import dump

    add_user(db_path, f"user-{role}", role)
    assert login(client, f"user-{role}").status_code == 302
    conn = db.connect(db_path)
    db.close_month(conn, "2025-02", "admin")
    conn.close()
    before = dump(db_path)
    token = csrf_token(client, "/reports/")
    checked = 0
    for rule in admin_rules(app):
        for month in ("2025-01", "2025-02"):
            url = rule.build({"month": month})[1]
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                response = client.open(url, method=method, data={"csrf_token": token})
                assert response.status_code == 403, (role, method, url)
                assert b"Only an administrator" in response.data
                checked += 1
    assert checked == 8  # 2 month routes and 2 user routes, twice
    assert dump(db_path) == before
    page = client.get("/reports/months").get_data(as_text=True)
    assert "Close or reopen" not in page and "/close" not in page


def test_admin_can_use_the_admin_routes(admin, db_path):
    token = csrf_token(admin, "/reports/months")
    response = admin.post("/reports/months/2025-01/close", data={"csrf_token": token})
    assert response.status_code == 302
    conn = db.connect(db_path)
    assert db.closed_months(conn) == {"2025-01"}
    conn.close()
