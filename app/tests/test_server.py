"""The application served by real uvicorn, as in production."""

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

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
def server(db_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("SECRET_KEY_FILE", "CREDENTIALS_DIRECTORY",
                        "CTV_BOOKEDBIZ_ENV")}
    env.update(DATABASE_PATH=str(db_path), SECRET_KEY=SECRET)
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "src.web.asgi:app",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=APP_DIR, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
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
