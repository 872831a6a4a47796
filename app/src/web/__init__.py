"""The web application: ``create_app`` builds everything."""

from __future__ import annotations

import sqlite3

from flask import Flask, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from .. import config, db
from . import admin, auth, formatting, health, reports

# The pages use one stylesheet from /static, inline SVG and forms posting
# to this site: no scripts, no inline styles, nothing from elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def create_app(test_config: dict | None = None) -> Flask:
    """Build the application.  Without ``test_config`` the settings come
    from the environment (see src.config) and a missing or unusable one
    raises ConfigError naming the variable."""
    app = Flask(__name__)
    app.config.from_mapping(
        SESSION_COOKIE_NAME="ctv_bookedbiz_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=auth.SESSION_LIFETIME,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    if test_config is None:
        app.config.from_mapping(config.web_config())
    else:
        app.config.from_mapping(test_config)
    for name in ("DATABASE_PATH", "SECRET_KEY"):
        if not app.config.get(name):
            raise config.ConfigError(f"{name} is not set")
    app.config["APP_VERSION"] = health.app_version()

    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True

    db.init_app(app)
    auth.init_app(app)  # first: its login check runs before CSRF's
    CSRFProtect(app)
    formatting.init_app(app)

    app.register_blueprint(auth.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(reports.bp)
    app.register_blueprint(admin.bp)

    @app.context_processor
    def deployed():
        """The footer's version and release, on every page."""
        return {
            "app_version": app.config["APP_VERSION"],
            "release": health.deployed_release(app.config.get("RELEASE_FILE")),
        }

    @app.get("/")
    def index():
        return redirect(url_for("reports.index"))

    @app.after_request
    def security_headers(response):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.endpoint != "static":
            # Pages and CSV downloads hold revenue figures (and the login
            # page a CSRF token): never kept by the browser or a proxy, so
            # after logout the back button cannot show a report again.
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return render_template(
            "error.html",
            code=400,
            message="The form had expired or was not sent by this site; please go back, reload the page and try again.",
        ), 400

    @app.errorhandler(UnicodeDecodeError)
    def not_utf8(error):
        # werkzeug decodes query strings and form bodies as UTF-8 when
        # first read; raw bytes that are not UTF-8 would otherwise be a 500.
        return render_template("error.html", code=400, message="The request is not valid UTF-8."), 400

    @app.errorhandler(HTTPException)
    def http_error(error):
        return render_template("error.html", code=error.code, message=error.description), error.code

    @app.errorhandler(sqlite3.Error)
    def database_error(error):
        app.logger.error("database error: %s", error)
        return render_template(
            "error.html", code=503, message="The database cannot be read right now. The operator can check /health."
        ), 503

    return app
