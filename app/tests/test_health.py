import json
from datetime import UTC, datetime, timedelta

import pytest

from src import config, db
from src.web import create_app

from .conftest import SECRET


def test_health_ok(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["schema_version"] == db.LATEST_VERSION
    assert body["last_import"].startswith("20")


def test_health_without_imports(tmp_path):
    path = tmp_path / "empty.db"
    conn = db.connect(path, create=True)
    db.upgrade(conn)
    conn.close()
    client = create_app({"DATABASE_PATH": str(path), "SECRET_KEY": SECRET}).test_client()
    body = client.get("/health").get_json()
    assert body == {
        "status": "ok",
        "database": "ok",
        "schema_version": db.LATEST_VERSION,
        "last_import": None,
        "replica": {"state": "off"},
        "version": "0.1.0",
        "release": None,
    }


def test_health_missing_database(tmp_path):
    path = tmp_path / "missing.db"
    client = create_app({"DATABASE_PATH": str(path), "SECRET_KEY": SECRET}).test_client()
    response = client.get("/health")
    assert response.status_code == 503
    assert response.get_json()["status"] == "error"
    assert not path.exists()


def test_health_not_migrated(tmp_path):
    path = tmp_path / "bare.db"
    db.connect(path, create=True).close()
    client = create_app({"DATABASE_PATH": str(path), "SECRET_KEY": SECRET}).test_client()
    response = client.get("/health")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "error"
    assert body["schema_version"] == 0


GOOD_STATUS = {
    "state": "replicating",
    "local_txid": 81,
    "replica_txid": 81,
    "behind_txids": 0,
    "replica_time": "2026-11-29T21:00:16Z",
    "checked_at": "2026-11-29T21:00:20Z",
    "error": None,
}


def health_with_replica(db_path, status_file):
    """GET /health with the settings read from an environment that names
    ``status_file`` (None: REPLICA_STATUS_FILE unset)."""
    env = {"DATABASE_PATH": str(db_path), "SECRET_KEY": SECRET}
    if status_file is not None:
        env["REPLICA_STATUS_FILE"] = str(status_file)
    return create_app(config.web_config(env)).test_client().get("/health")


def test_replica_off_when_not_configured(db_path):
    for status_file in (None, "", "   "):
        response = health_with_replica(db_path, status_file)
        assert response.status_code == 200
        assert response.get_json()["replica"] == {"state": "off"}


def test_replica_good_file_reported_with_age(db_path, tmp_path):
    checked = datetime.now(UTC) - timedelta(seconds=90)
    status = dict(GOOD_STATUS, checked_at=checked.strftime("%Y-%m-%dT%H:%M:%SZ"))
    status_file = tmp_path / "replica.json"
    status_file.write_text(json.dumps(status))
    response = health_with_replica(db_path, status_file)
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    replica = body["replica"]
    age = replica.pop("age_seconds")
    assert 90 <= age <= 150
    assert replica == status


def test_replica_missing_file_is_unknown(db_path, tmp_path):
    status_file = tmp_path / "not-yet.json"
    response = health_with_replica(db_path, status_file)
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"
    assert response.get_json()["replica"] == {"state": "unknown", "error": f"no status yet ({status_file})"}


def test_replica_garbage_file_is_unknown_and_still_200(db_path, tmp_path):
    status_file = tmp_path / "replica.json"
    for garbage in (b"\xff\xfe\x00garbage{", b"", b"[" * 100000, b'{"state": "replicating"'):
        status_file.write_bytes(garbage)
        response = health_with_replica(db_path, status_file)
        assert response.status_code == 200
        body = response.get_json()
        assert body["status"] == "ok"
        assert body["replica"] == {"state": "unknown", "error": "status file is not valid JSON"}


def test_replica_unreadable_file_is_unknown(db_path, tmp_path):
    response = health_with_replica(db_path, tmp_path)  # a directory
    assert response.status_code == 200
    replica = response.get_json()["replica"]
    assert replica["state"] == "unknown"
    assert replica["error"].startswith("cannot read status file: ")


def test_replica_json_list_is_unknown(db_path, tmp_path):
    status_file = tmp_path / "replica.json"
    status_file.write_text(json.dumps([GOOD_STATUS]))
    response = health_with_replica(db_path, status_file)
    assert response.status_code == 200
    assert response.get_json()["replica"] == {"state": "unknown", "error": "status file is not a JSON object"}


def test_replica_unknown_keys_dropped_and_types_checked(db_path, tmp_path):
    status_file = tmp_path / "replica.json"
    status_file.write_text(
        json.dumps(
            {
                "state": "held",
                "local_txid": "81",
                "replica_txid": True,
                "behind_txids": 2.5,
                "replica_time": 1764450016,
                "checked_at": "yesterday",
                "error": "x" * 1000,
                "password": "secret",
                "extra": {"nested": 1},
            }
        )
    )
    response = health_with_replica(db_path, status_file)
    assert response.status_code == 200
    assert response.get_json()["replica"] == {
        "state": "held",
        "local_txid": None,
        "replica_txid": None,
        "behind_txids": None,
        "replica_time": None,
        "checked_at": "yesterday",
        "error": "x" * 300,
        "age_seconds": None,
    }


def test_replica_does_not_mask_a_broken_database(tmp_path):
    status_file = tmp_path / "replica.json"
    status_file.write_text(json.dumps(GOOD_STATUS))
    app = create_app(
        {"DATABASE_PATH": str(tmp_path / "missing.db"), "SECRET_KEY": SECRET, "REPLICA_STATUS_FILE": str(status_file)}
    )
    response = app.test_client().get("/health")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "error"
    assert body["database"].startswith("cannot read")
    assert body["replica"]["state"] == "replicating"


def test_version_and_release_on_health_and_every_page(db_path, tmp_path):
    """The app's version, and the release the deploy recorded, read from
    the file the admin tool writes (RELEASE_FILE)."""
    from importlib.metadata import version

    from .conftest import login

    release_file = tmp_path / "release.json"
    app = create_app({"DATABASE_PATH": str(db_path), "SECRET_KEY": SECRET, "RELEASE_FILE": str(release_file)})
    client = app.test_client()
    body = client.get("/health").get_json()
    assert body["version"] == version("ctv-bookedbiz-db")
    assert body["release"] is None
    assert "release not recorded" in client.get("/auth/login").get_data(as_text=True)
    release_file.write_text(json.dumps({"release": "0123456789abcdef0123", "live_since": "2026-11-29T21:00:16+00:00"}))
    body = client.get("/health").get_json()
    assert body["release"] == {"id": "0123456789abcdef0123", "live_since": "2026-11-29T21:00:16+00:00"}
    assert body["status"] == "ok"
    login(client)
    for url in ("/auth/login", "/reports/", "/reports/months"):
        page = client.get(url, follow_redirects=True).get_data(as_text=True)
        footer = page.split('<footer class="site">')[1]
        assert f"CTV BookedBiz {body['version']}" in footer, url
        assert 'release <span class="release">0123456789ab</span>, live since 2026-11-29 21:00 UTC' in footer, url


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"[1]",
        b"{",
        b'{"release": 7}',
        b'{"release": "<b>x</b>"}',
        b"\xff\xfe",
        b'{"release": "ab", "live_since": ["x"]}',
    ],
)
def test_a_bad_release_file_is_never_an_error(db_path, tmp_path, content):
    release_file = tmp_path / "release.json"
    release_file.write_bytes(content)
    client = create_app(
        {"DATABASE_PATH": str(db_path), "SECRET_KEY": SECRET, "RELEASE_FILE": str(release_file)}
    ).test_client()
    response = client.get("/health")
    assert response.status_code == 200
    release = response.get_json()["release"]
    assert release is None or release == {"id": "ab", "live_since": None}
    assert client.get("/auth/login").status_code == 200
