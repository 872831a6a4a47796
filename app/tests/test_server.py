"""The application served by real uvicorn, as in production."""

import http.cookiejar
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from src import db

from .conftest import SECRET

APP_DIR = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.fixture
def server(request, db_path):
    """uvicorn as the unit runs it; ``request.param``: more environment
    (as the env file gives it)."""
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SECRET_KEY_FILE", "CREDENTIALS_DIRECTORY", "CTV_BOOKEDBIZ_ENV", "FORWARDED_ALLOW_IPS")
    }
    env.update(DATABASE_PATH=str(db_path), SECRET_KEY=SECRET, **getattr(request, "param", {}))
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "src.web.asgi:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=APP_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail("uvicorn exited:\n" + process.stdout.read())
            try:
                with socket.create_connection(("127.0.0.1", port), 0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("uvicorn did not start listening")
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


def test_uvicorn_serves_the_app(server):
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(server + "/")
    assert redirect.value.code == 302
    assert redirect.value.headers["Location"] == "/reports/"
    redirect.value.close()
    with opener.open(server + "/health") as response:
        assert response.status == 200
        body = response.read()
    assert b'"status":"ok"' in body.replace(b" ", b"")
    with pytest.raises(urllib.error.HTTPError) as login:
        opener.open(server + "/reports/revenue")
    assert login.value.code == 302
    assert login.value.headers["Location"].startswith("/auth/login?next=")
    login.value.close()


def failed_login_address(base: str, db_path, forwarded_for: str) -> str:
    """Fail one login with X-Forwarded-For set; the address the throttle
    counted it against."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with opener.open(base + "/auth/login") as page:
        token = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', page.read()).group(1).decode()
    form = urllib.parse.urlencode({"username": "viewer", "password": "wrong", "csrf_token": token}).encode()
    attempt = urllib.request.Request(base + "/auth/login", data=form, headers={"X-Forwarded-For": forwarded_for})
    with pytest.raises(urllib.error.HTTPError) as refused:
        opener.open(attempt)
    assert refused.value.code == 401
    refused.value.close()
    conn = db.connect(db_path)
    try:
        ((address,),) = conn.execute("SELECT address FROM login_attempts")
    finally:
        conn.close()
    return address


# FORWARDED_ALLOW_IPS as the role's env file writes it: empty by default
# (no proxy is trusted: the address is the connection's), or the proxies'
# addresses when a same-host proxy is configured.
@pytest.mark.parametrize(
    "server, counted",
    [
        ({"FORWARDED_ALLOW_IPS": ""}, "127.0.0.1"),
        ({"FORWARDED_ALLOW_IPS": "127.0.0.1,::1"}, "203.0.113.7"),
    ],
    indirect=["server"],
)
def test_whose_address_counts_is_the_forwarded_allow_ips_setting(server, db_path, counted):
    assert failed_login_address(server, db_path, "203.0.113.7") == counted
