import io

from .conftest import PASSWORD, csrf_token, login

PUBLIC_ENDPOINTS = {"index", "static", "health.health", "auth.login", "auth.logout"}


def test_root_redirects_to_reports(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/reports/"


def test_every_other_route_requires_login(app, client):
    """Sweeps the URL map so that a new route cannot slip through."""
    checked = 0
    token = csrf_token(client)  # so that POSTs get past CSRF to the login check
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        url = rule.build({arg: "Jan-25" for arg in rule.arguments})[1]
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            data = None if method == "GET" else {"csrf_token": token}
            response = client.open(url, method=method, data=data)
            assert response.status_code == 302, (method, url)
            assert response.headers["Location"].startswith("/auth/login?next="), (method, url)
            checked += 1
    assert checked >= 7


def test_login_page(client):
    response = client.get("/auth/login")
    assert response.status_code == 200
    assert b'name="csrf_token"' in response.data


def test_login_and_next(client):
    client.get("/reports/ae")
    response = login(client, next_url="/reports/ae")
    assert response.status_code == 302
    assert response.headers["Location"] == "/reports/ae"
    assert client.get("/reports/ae").status_code == 200


def test_login_ignores_offsite_next(client):
    response = login(client, next_url="https://evil.example/")
    assert response.headers["Location"] == "/reports/"


def test_login_with_a_next_that_is_not_a_url_goes_to_the_index(client):
    """urlsplit raised ValueError on these (a 500 after the session cookie
    was set), werkzeug on the CR/LF of a Location header."""
    for query in ("next=//%5B", "next=http://[::1", "next=//a%EF%BC%8Fb@c", "next=/%0D%0ALocation:%20//evil.example"):
        client.delete_cookie("ctv_bookedbiz_session")
        response = client.post(
            f"/auth/login?{query}", data={"username": "viewer", "password": PASSWORD, "csrf_token": csrf_token(client)}
        )
        assert response.status_code == 302, query
        assert response.headers["Location"] == "/reports/", query
        assert client.get("/reports/").status_code == 200


def test_login_fields_sent_as_files_are_refused(client):
    """Flask-WTF puts uploaded files into the form data; a field sent as a
    file is an invalid form (400), not a 500."""
    for field in ("username", "password"):
        data = {"username": "viewer", "password": PASSWORD, "csrf_token": csrf_token(client)}
        data[field] = (io.BytesIO(data[field].encode()), "field.txt")
        response = client.post("/auth/login", data=data)
        assert response.status_code == 400, field
        assert b"must be sent as text" in response.data
        assert client.get("/reports/").status_code == 302


def test_session_cookie_flags(client):
    response = login(client)
    [cookie] = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("ctv_bookedbiz_session=")]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Expires=" in cookie  # 12 hours, not forever


def test_failed_login_does_not_reveal_whether_user_exists(client):
    wrong_password = login(client, "viewer", "wrong password!")
    no_such_user = login(client, "nobody", "wrong password!")
    assert wrong_password.status_code == no_such_user.status_code == 401
    assert b"Unknown user name or wrong password." in wrong_password.data

    def text(response):
        return response.get_data(as_text=True).split('name="csrf_token"')[0]

    assert text(wrong_password) == text(no_such_user)
    assert client.get("/reports/").status_code == 302


def test_login_needs_csrf_token(client):
    response = client.post("/auth/login", data={"username": "viewer", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/reports/").status_code == 302


def test_disabled_user_cannot_log_in(app, client, db_path):
    from src import db

    conn = db.connect(db_path)
    db.update_user(conn, "viewer", active=0)
    conn.close()
    assert login(client).status_code == 401


def test_logout_is_post_with_csrf(viewer):
    assert viewer.get("/auth/logout").status_code == 405
    token = csrf_token(viewer, "/reports/")
    response = viewer.post("/auth/logout", data={"csrf_token": token})
    assert response.status_code == 302
    assert viewer.get("/reports/").status_code == 302


def test_security_headers(client):
    response = client.get("/auth/login")
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
