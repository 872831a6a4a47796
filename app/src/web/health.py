"""Unauthenticated health check for monitoring and deployment."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

from flask import Blueprint, current_app, jsonify

from .. import db

bp = Blueprint("health", __name__)

# The replication status file (REPLICA_STATUS_FILE) is written by a host
# tool once a minute.  It is information only: nothing in it changes the
# HTTP status or the top-level "status".
REPLICA_INTS = ("local_txid", "replica_txid", "behind_txids")
REPLICA_STRINGS = ("state", "replica_time", "checked_at", "error")
MAX_STRING = 300
MAX_FILE_BYTES = 64 * 1024


def app_version() -> str:
    """This app's version, from its installed package's metadata."""
    try:
        return version("ctv-bookedbiz-db")
    except PackageNotFoundError:
        return "unknown"


def _read_json(path: str):
    """A small JSON file written by a host tool; raises OSError or
    ValueError."""
    with open(path, "rb") as file:
        return json.loads(file.read(MAX_FILE_BYTES))


def deployed_release(path: str | None) -> dict | None:
    """The release in use as the deploy recorded it (RELEASE_FILE):
    {"id", "live_since"}, or None when unknown; never raises."""
    if not path:
        return None
    try:
        data = _read_json(path)
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    release, since = data.get("release"), data.get("live_since")
    if not isinstance(release, str) or not release.isalnum():
        return None
    return {"id": release[:64], "live_since": since[:40] if isinstance(since, str) else None}


def _age_seconds(checked_at) -> int | None:
    try:
        when = datetime.fromisoformat(checked_at)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return int((datetime.now(UTC) - when).total_seconds())
    except (TypeError, ValueError, OverflowError):
        return None


def replica_status(path: str | None) -> dict:
    """The "replica" field of /health; never raises."""
    if not path:
        return {"state": "off"}
    try:
        data = _read_json(path)
    except FileNotFoundError:
        return {"state": "unknown", "error": f"no status yet ({path})"}
    except OSError as exc:
        return {"state": "unknown", "error": f"cannot read status file: {exc.strerror or exc}"}
    except (ValueError, RecursionError):
        return {"state": "unknown", "error": "status file is not valid JSON"}
    if not isinstance(data, dict):
        return {"state": "unknown", "error": "status file is not a JSON object"}
    replica = {}
    for key in REPLICA_INTS:
        value = data.get(key)
        ok = isinstance(value, int) and not isinstance(value, bool)
        replica[key] = value if ok else None
    for key in REPLICA_STRINGS:
        value = data.get(key)
        replica[key] = value[:MAX_STRING] if isinstance(value, str) else None
    replica["state"] = replica["state"] or "unknown"
    replica["age_seconds"] = _age_seconds(replica["checked_at"])
    return replica


@bp.get("/health")
def health():
    body = {"status": "ok", "database": "ok", "schema_version": None, "last_import": None}
    try:
        conn = db.connect(current_app.config["DATABASE_PATH"])
        try:
            version = db.schema_version(conn)
            body["schema_version"] = version
            if version != db.LATEST_VERSION:
                body.update(
                    status="error",
                    database=(
                        f"schema version {version}, expected {db.LATEST_VERSION}: run 'ctv-bookedbiz db upgrade'"
                    ),
                )
            else:
                body["last_import"] = db.last_import(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        body.update(status="error", database=f"cannot read: {exc}")
    body["replica"] = replica_status(current_app.config.get("REPLICA_STATUS_FILE"))
    body["version"] = current_app.config["APP_VERSION"]
    body["release"] = deployed_release(current_app.config.get("RELEASE_FILE"))
    return jsonify(body), 200 if body["status"] == "ok" else 503
