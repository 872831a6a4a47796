"""The users page (/admin/users): who can log in, who is locked out, and
unlocking a locked-out user name."""

import re

import pytest

from src import db

from .conftest import PASSWORD, csrf_token, login
from .test_security import NON_ADMIN_ROLES, add_user, attempts

WRONG = "wrong password!"


def lock_out(app, name="viewer"):
    """Five failed logins for ``name`` from a client of its own: the name
    is then locked out, even with the right password."""
    client = app.test_client()
    for _ in range(5):
        assert login(client, name, WRONG).status_code == 401
    assert login(client, name, PASSWORD).status_code == 429
    return client


def row_of(page: str, name: str) -> str:
    [row] = re.findall(rf"<tr>\s*<td>{re.escape(name)}</td>.*?</tr>", page, re.S)
    return row


def unlock(client, name, token=None):
    token = csrf_token(client, "/admin/users") if token is None else token
    return client.post("/admin/users/unlock", data={"username": name, "csrf_token": token})


def test_page_lists_the_users(admin, db_path):
    conn = db.connect(db_path)
    db.update_user(conn, "viewer", active=0)
    conn.close()
    response = admin.get("/admin/users")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<h1>Users</h1>" in page
    assert re.search(
        r"<td>admin</td>\s*<td>admin</td>\s*<td>yes</td>\s*"
        r"<td>no</td>",
        row_of(page, "admin"),
    )
    assert re.search(
        r"<td>viewer</td>\s*<td>viewer</td>\s*<td>no</td>\s*"
        r"<td>no</td>",
        row_of(page, "viewer"),
    )
    assert "Unlock</button>" not in page
    assert " style=" not in page and "<style" not in page  # strict CSP


def test_locked_out_user_is_unlocked_on_the_page(app, admin, db_path):
    locked = lock_out(app)
    page = admin.get("/admin/users").get_data(as_text=True)
    row = row_of(page, "viewer")
    assert re.search(r"until \d{4}-\d\d-\d\d \d\d:\d\d UTC", row), row
    assert 'name="username" type="hidden" value="viewer"' in row
    assert "Unlock</button>" in row
    assert "Unlock" not in row_of(page, "admin")

    response = unlock(admin, "viewer")
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/users"
    page = admin.get("/admin/users").get_data(as_text=True)
    assert "Cleared 5 failed login(s) of viewer" in page
    assert "Unlock" not in row_of(page, "viewer")
    assert attempts(db_path) == []
    assert login(locked, "viewer", PASSWORD).status_code == 302
    assert locked.get("/reports/").status_code == 200


def test_unlock_clears_the_name_as_typed_ignoring_case(app, admin, db_path):
    """Failures are counted for the name trimmed and casefolded."""
    client = app.test_client()
    for name in ("Viewer", " VIEWER ", "viewer", "vIeWeR", "viewer"):
        assert login(client, name, WRONG).status_code == 401
    login(client, "admin", WRONG)
    assert login(client, "viewer", PASSWORD).status_code == 429
    assert unlock(admin, "viewer").status_code == 302
    assert attempts(db_path) == [("admin", "127.0.0.1")]
    assert login(client, "viewer", PASSWORD).status_code == 302


def test_unlock_of_a_user_who_is_not_locked_out(admin, db_path):
    response = unlock(admin, "viewer")
    assert response.status_code == 302
    page = admin.get("/admin/users").get_data(as_text=True)
    assert "Cleared 0 failed login(s) of viewer" in page


def test_unlock_of_an_unknown_user_is_a_404(app, admin, db_path):
    lock_out(app, "nobody")
    before = attempts(db_path)
    for name in ("nobody", "Viewer", "viewer ", ""):
        response = unlock(admin, name)
        assert response.status_code == (400 if name == "" else 404), name
    assert b"There is no such user." in unlock(admin, "nobody").data
    assert attempts(db_path) == before


def test_unlock_needs_the_csrf_token(app, admin, db_path):
    lock_out(app)
    before = attempts(db_path)
    for token in ("", "not-a-token"):
        response = unlock(admin, "viewer", token=token)
        assert response.status_code == 400
    response = admin.post("/admin/users/unlock", data={"username": "viewer"})
    assert response.status_code == 400
    assert attempts(db_path) == before
    assert admin.get("/admin/users/unlock").status_code == 405


@pytest.mark.parametrize("role", NON_ADMIN_ROLES)
def test_non_admins_get_403(app, client, db_path, role):
    add_user(db_path, f"user-{role}", role)
    lock_out(app)
    assert login(client, f"user-{role}").status_code == 302
    before = attempts(db_path)
    response = client.get("/admin/users")
    assert response.status_code == 403
    assert b"Only an administrator" in response.data
    response = client.post(
        "/admin/users/unlock", data={"username": "viewer", "csrf_token": csrf_token(client, "/reports/")}
    )
    assert response.status_code == 403
    assert attempts(db_path) == before
    assert 'href="/admin/users"' not in client.get("/reports/").get_data(as_text=True)


def test_nav_links_admins_to_the_users_page(admin):
    page = admin.get("/reports/").get_data(as_text=True)
    assert re.search(r'<nav>.*<a href="/admin/users">Admin</a>.*</nav>', page, re.S)


def test_without_a_session_the_page_asks_to_log_in(client):
    for method in ("GET", "POST"):
        url = "/admin/users" + ("/unlock" if method == "POST" else "")
        response = client.open(url, method=method)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/auth/login")
