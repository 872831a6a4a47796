"""One real uvicorn server and one headless Chromium for the browser tests.

The server runs in a subprocess on a free loopback port against a temporary
database that the CLI sets up (``db upgrade``, ``demo-data``, ``users add``
with the password on standard input), as an operator would.  The browser is
Debian's ``chromium`` driven by Playwright; Playwright's own browser
download is never used.  Without a chromium executable the tests skip.

Every page the tests open is watched: console errors, uncaught page errors
and Content-Security-Policy violations (``securitypolicyviolation`` events,
reported through an exposed binding) fail the test that caused them.
Screenshots (1366x768) go to ``$CTV_SCREENSHOT_DIR``, by default
``<repo root>/.artifacts/screenshots/`` (outside the deployed ``app/``).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

APP_DIR = Path(__file__).resolve().parents[2]
REPO_ROOT = APP_DIR.parent
SECRET = "e2e-secret-key-0123456789abcdef-32"
USERNAME = "e2e-admin"
# Logging out ends every session of that user, so the logout test has its
# own user and the shared logged-in context stays logged in.
LEAVER = "e2e-viewer"
PASSWORD = "correct horse battery staple"
SPOTS = 3000
VIEWPORT = {"width": 1366, "height": 768}
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Runs in every page before its own content; CDP-injected scripts are not
# subject to the page's Content-Security-Policy.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__ctvCspViolation(
    `${e.violatedDirective} blocked ${e.blockedURI || "inline"}`
    + ` at ${e.sourceFile || e.documentURI}:${e.lineNumber}`);
});
"""


def chromium_executable() -> str | None:
    found = shutil.which("chromium")
    if found:
        return found
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return None


def screenshot_dir() -> Path:
    return Path(os.environ.get("CTV_SCREENSHOT_DIR") or REPO_ROOT / ".artifacts" / "screenshots")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cli(env: dict, *args: str, input: str | None = None) -> str:
    exe = shutil.which("ctv-bookedbiz", path=str(Path(sys.executable).parent))
    assert exe, "ctv-bookedbiz is installed in the environment"
    result = subprocess.run([exe, *args], env=env, input=input, text=True, capture_output=True, timeout=120)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """Base URL of real uvicorn serving demo data; one per test session."""
    root = tmp_path_factory.mktemp("e2e")
    data = root / "imports"
    data.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SECRET_KEY_FILE", "CREDENTIALS_DIRECTORY", "CTV_BOOKEDBIZ_ENV")
    }
    env.update(DATABASE_PATH=str(root / "bookedbiz.db"), DATA_PATH=str(data), SECRET_KEY=SECRET)
    _cli(env, "db", "upgrade")
    _cli(env, "demo-data", "--spots", str(SPOTS), "--seed", "1")
    _cli(env, "users", "add", USERNAME, "--role", "admin", input=PASSWORD + "\n")
    _cli(env, "users", "add", LEAVER, "--role", "viewer", input=PASSWORD + "\n")

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = root / "uvicorn.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "src.web.asgi:app", "--host", "127.0.0.1", "--port", str(port)],
            cwd=APP_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail("uvicorn exited:\n" + log_path.read_text())
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("uvicorn did not answer /health:\n" + log_path.read_text())
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def browser():
    """Debian's headless Chromium, one per test session.  Playwright starts
    it with a fresh temporary profile (user-data-dir) and removes it after."""
    executable = chromium_executable()
    if executable is None:
        pytest.skip("no chromium executable found (install Debian's 'chromium' package: apt-get install -y chromium)")
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            # Keep the back/forward cache that real browsers have, so that
            # Back after logging out is tested as users meet it.
            ignore_default_args=["--disable-back-forward-cache"],
        )
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


@pytest.fixture(scope="session")
def shots():
    """Saves the page as <name>.png (1366x768) in the screenshot folder."""
    folder = screenshot_dir()
    folder.mkdir(parents=True, exist_ok=True)

    def shoot(page, name: str) -> None:
        page.screenshot(path=folder / f"{name}.png")

    return shoot


class Visitor:
    """A browser context (its own cookies) whose pages are watched for
    console errors, page errors and CSP violations."""

    def __init__(self, browser, base_url: str):
        self.base_url = base_url
        self.problems: list[str] = []
        self.context = browser.new_context(base_url=base_url, viewport=VIEWPORT, accept_downloads=True)
        self.context.expose_binding(
            "__ctvCspViolation",
            lambda source, text: self.problems.append(f"CSP violation on {source['page'].url}: {text}"),
        )
        self.context.add_init_script(CSP_LISTENER)
        self.context.on("console", self._console)
        self.context.on("weberror", lambda error: self.problems.append(f"page error: {error.error}"))

    def _console(self, message) -> None:
        if message.type == "error" or "Content Security Policy" in message.text:
            where = message.location.get("url") or (message.page.url if message.page else "?")
            if where.endswith("/favicon.ico") and "404" in message.text:
                # Chromium asks every site for /favicon.ico and the app
                # has none; that 404 is noise, not an error of a page.
                return
            self.problems.append(f"console {message.type} ({where}): {message.text}")

    def new_page(self):
        return self.context.new_page()

    def login(self, page, username: str = USERNAME, password: str = PASSWORD) -> None:
        page.goto("/auth/login")
        page.get_by_label("User name").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_load_state()

    def take(self, pattern: str) -> list[str]:
        """Removes and returns the problems matching ``pattern``: for a
        test that expects them."""
        taken = [p for p in self.problems if re.search(pattern, p)]
        self.problems = [p for p in self.problems if p not in taken]
        return taken

    def check(self) -> None:
        problems, self.problems = self.problems, []
        assert not problems, "\n".join(problems)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visitor(browser, server):
    """A fresh, logged-out browser context; fails on console errors or CSP
    violations of its pages."""
    v = Visitor(browser, server)
    try:
        yield v
        v.check()
    finally:
        v.close()


@pytest.fixture(scope="session")
def _logged_in(browser, server):
    v = Visitor(browser, server)
    page = v.new_page()
    v.login(page)
    assert re.search(r"/reports/$", page.url), page.url
    page.close()
    v.check()
    yield v
    v.close()


@pytest.fixture
def page(_logged_in):
    """A new page in the session's logged-in browser context."""
    page = _logged_in.new_page()
    try:
        yield page
        _logged_in.check()
    finally:
        page.close()
