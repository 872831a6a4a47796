"""Unauthenticated health check for monitoring and deployment."""

from __future__ import annotations

import sqlite3

from flask import Blueprint, current_app, jsonify

from .. import db

bp = Blueprint("health", __name__)


@bp.get("/health")
def health():
    body = {"status": "ok", "database": "ok", "schema_version": None,
            "last_import": None}
    try:
        conn = db.connect(current_app.config["DATABASE_PATH"])
        try:
            version = db.schema_version(conn)
            body["schema_version"] = version
            if version != db.LATEST_VERSION:
                body.update(status="error", database=(
                    f"schema version {version}, expected "
                    f"{db.LATEST_VERSION}: run 'ctv-bookedbiz db upgrade'"))
            else:
                body["last_import"] = db.last_import(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        body.update(status="error", database=f"cannot read: {exc}")
    return jsonify(body), 200 if body["status"] == "ok" else 503
