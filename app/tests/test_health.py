from src import db
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
    client = create_app({"DATABASE_PATH": str(path),
                         "SECRET_KEY": SECRET}).test_client()
    body = client.get("/health").get_json()
    assert body == {"status": "ok", "database": "ok",
                    "schema_version": db.LATEST_VERSION, "last_import": None}


def test_health_missing_database(tmp_path):
    path = tmp_path / "missing.db"
    client = create_app({"DATABASE_PATH": str(path),
                         "SECRET_KEY": SECRET}).test_client()
    response = client.get("/health")
    assert response.status_code == 503
    assert response.get_json()["status"] == "error"
    assert not path.exists()


def test_health_not_migrated(tmp_path):
    path = tmp_path / "bare.db"
    db.connect(path, create=True).close()
    client = create_app({"DATABASE_PATH": str(path),
                         "SECRET_KEY": SECRET}).test_client()
    response = client.get("/health")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "error"
    assert body["schema_version"] == 0
