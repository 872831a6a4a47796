import re

import pytest
from click.testing import CliRunner
from hypothesis import settings
from werkzeug.security import generate_password_hash

from src import db
from src.cli import main
from src.web import create_app

# Keep no example database in the source tree.
settings.register_profile("app", database=None)
settings.load_profile("app")

SECRET = "test-secret-key-0123456789abcdef"
PASSWORD = "correct horse battery"

# A small booked-business fixture whose report figures are worked out by
# hand in test_reports.py.  Money is in cents.
#  bill, air date, month, customer, agency, AE, revenue type, spot type,
#  language, market, length, gross, net, broker fees, contract
SPOTS = [
    (
        "A1:Acme Foods",
        "2025-01-06",
        "2025-01",
        "Acme Foods",
        "A1",
        "Alice",
        "Internal Ad Sales",
        "COM",
        "M",
        "LAX",
        30,
        100000,
        85000,
        0,
        "K1",
    ),
    (
        "A1:Acme Foods",
        "2025-01-07",
        "2025-01",
        "Acme Foods",
        "A1",
        "Alice",
        "Internal Ad Sales",
        "COM",
        "V",
        "SFO",
        15,
        50000,
        42500,
        0,
        "K1",
    ),
    (
        "A1:Acme Foods",
        "2025-02-03",
        "2025-02",
        "Acme Foods",
        "A1",
        "Alice",
        "Internal Ad Sales",
        "COM",
        "M",
        "LAX",
        30,
        200000,
        170000,
        0,
        "K1",
    ),
    (
        "Direct:Bright Dental",
        "2025-01-08",
        "2025-01",
        "Bright Dental",
        None,
        "Bob",
        "Direct Response",
        "COM",
        "V",
        "SFO",
        60,
        30000,
        28500,
        1500,
        "K2",
    ),
    (
        "Direct:Bright Dental",
        "2025-03-10",
        "2025-03",
        "Bright Dental",
        None,
        "Bob",
        "Direct Response",
        "COM",
        "C",
        "NYC",
        30,
        70000,
        66500,
        0,
        "K2",
    ),
    (
        "A1:Acme Foods",
        "2025-01-09",
        "2025-01",
        "Acme Foods",
        "A1",
        "Alice",
        "Trade",
        "COM",
        "M",
        "LAX",
        30,
        999900,
        999900,
        0,
        "K3",
    ),
    (
        "A1:Acme Foods",
        "2025-01-10",
        "2025-01",
        "Acme Foods",
        "A1",
        "Alice",
        "Internal Ad Sales",
        "BNS",
        "M",
        "LAX",
        30,
        0,
        0,
        0,
        "K1",
    ),
    (
        "A1:Acme Foods",
        "2024-01-08",
        "2024-01",
        "Acme Foods",
        "A1",
        "Alice",
        "Internal Ad Sales",
        "COM",
        "M",
        "LAX",
        30,
        80000,
        68000,
        0,
        "K0",
    ),
    (
        "Direct:Bright Dental",
        "2024-02-05",
        "2024-02",
        "Bright Dental",
        None,
        "Bob",
        "Direct Response",
        "COM",
        "V",
        "SFO",
        30,
        40000,
        38000,
        0,
        "K0",
    ),
]
BUDGETS = [
    ("Alice", "2025-01", 200000),
    ("Alice", "2025-02", 200000),
    ("Bob", "2025-01", 50000),
    ("Bob", "2025-03", 100000),
]


def make_database(path, *, spots=SPOTS, budgets=BUDGETS):
    conn = db.connect(path, create=True)
    try:
        db.upgrade(conn)
        if spots:
            db.replace_spots(conn, spots, source_file="fixture.csv")
        if budgets:
            db.replace_budgets(conn, budgets, source_file="budgets.csv")
        for name, role in (("admin", "admin"), ("viewer", "viewer")):
            db.add_user(conn, name, generate_password_hash(PASSWORD, "pbkdf2:sha256:1000"), role)
    finally:
        conn.close()


def dump(path) -> str:
    """The whole database as SQL text, to compare before and after."""
    conn = db.connect(path)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


@pytest.fixture(autouse=True)
def _no_host_lock_settings(monkeypatch):
    """Tests choose the host lock's wait and token themselves."""
    monkeypatch.delenv("CTV_BOOKEDBIZ_DB_LOCK_WAIT", raising=False)
    monkeypatch.delenv("CTV_BOOKEDBIZ_DB_LOCK_TOKEN", raising=False)


@pytest.fixture
def db_path(tmp_path):
    path = tmp_path / "bookedbiz.db"
    make_database(path)
    return path


@pytest.fixture
def app(db_path):
    return create_app({"TESTING": True, "DATABASE_PATH": str(db_path), "SECRET_KEY": SECRET})


@pytest.fixture
def client(app):
    return app.test_client()


def csrf_token(client, url="/auth/login") -> str:
    page = client.get(url).get_data(as_text=True)
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)


def login(client, username="viewer", password=PASSWORD, next_url=None):
    url = "/auth/login" + (f"?next={next_url}" if next_url else "")
    return client.post(url, data={"username": username, "password": password, "csrf_token": csrf_token(client)})


@pytest.fixture
def viewer(client):
    assert login(client).status_code == 302
    return client


@pytest.fixture
def admin(client):
    assert login(client, "admin").status_code == 302
    return client


class Cli:
    """Runs ``ctv-bookedbiz`` in-process with the test environment."""

    def __init__(self, env):
        self.env = env
        self.runner = CliRunner()

    def __call__(self, *args, input=None):
        return self.runner.invoke(main, [str(a) for a in args], input=input, env=self.env, catch_exceptions=False)


@pytest.fixture
def data_dir(tmp_path):
    path = tmp_path / "imports"
    path.mkdir()
    return path


@pytest.fixture
def runner(tmp_path, data_dir):
    """CLI against an empty, migrated database (no secret in the env)."""
    path = tmp_path / "cli.db"
    cli = Cli(
        {
            "DATABASE_PATH": str(path),
            "DATA_PATH": str(data_dir),
            "SECRET_KEY": None,
            "SECRET_KEY_FILE": None,
            "CREDENTIALS_DIRECTORY": None,
            "CTV_BOOKEDBIZ_ENV": None,
        }
    )
    cli.db_path = path
    result = cli("db", "upgrade")
    assert result.output == f"schema upgraded from version 0 to {db.LATEST_VERSION}\n"
    return cli
