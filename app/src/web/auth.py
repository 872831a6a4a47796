"""Logging in and out; who may do what.

- Every endpoint needs a logged-in user except those in
  :data:`PUBLIC_ENDPOINTS` (checked before anything else, CSRF included,
  so that a route added later is protected by default).
- A session names the user as ``"id:nonce"``; the nonce is stored in the
  users table and replaced on logout, on a new password and when the user
  is disabled, which ends every session of that user (Flask's sessions are
  signed cookies: without this a copy of the cookie would stay valid).
- A session also ends :data:`SESSION_LIFETIME` after login, however
  active it is.
- Failed logins are throttled per user name and per client address
  (``request.remote_addr``) with the counts kept in SQLite, so the limits
  hold across worker processes and restarts.
"""

from __future__ import annotations

import hmac
import re
import time
from datetime import timedelta
from functools import cache, wraps

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import PasswordField, StringField
from wtforms.validators import InputRequired, Length

from .. import db

bp = Blueprint("auth", __name__, url_prefix="/auth")

# Reachable without logging in.  Everything else redirects to the login page.
PUBLIC_ENDPOINTS = frozenset({"index", "static", "health.health", "auth.login"})

SESSION_LIFETIME = timedelta(hours=12)

# Defaults of the login throttle (overridable in the Flask config).
LOGIN_THROTTLE_DEFAULTS = {
    "LOGIN_FAILURE_WINDOW_SECONDS": 15 * 60,
    "LOGIN_MAX_FAILURES_PER_USER": 5,
    "LOGIN_MAX_FAILURES_PER_ADDRESS": 20,
}

TOO_MANY_FAILURES = "Too many failed logins for this user name or from this address. Try again in {minutes} minute(s)."


@cache
def _dummy_hash() -> str:
    """Checked when the user does not exist, so that a failed login takes
    as long whether or not the name is known."""
    return generate_password_hash("not a password of anyone")


class User(UserMixin):
    def __init__(self, row):
        self.id = row["id"]
        self.username = row["username"]
        self.role = row["role"]
        self.active = bool(row["active"])
        self.session_nonce = row["session_nonce"]

    def get_id(self) -> str:
        """What the session stores: id and the user's current nonce."""
        return f"{self.id}:{self.session_nonce}"

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class _TextOnly:
    """Refuses a value that is not text.  Flask-WTF puts uploaded files
    (multipart) into the form data and takes a JSON body as form data, so a
    field can get a file, a number or a list, where the validators and the
    views expect a string.  Every text field of every form is one of the
    classes below."""

    def process_formdata(self, valuelist):
        if valuelist and not isinstance(valuelist[0], str):
            raise ValueError("This field must be sent as text.")
        super().process_formdata(valuelist)


class TextField(_TextOnly, StringField):
    pass


class SecretField(_TextOnly, PasswordField):
    pass


class LoginForm(FlaskForm):
    username = TextField("User name", validators=[InputRequired(), Length(max=100)])
    password = SecretField("Password", validators=[InputRequired(), Length(max=200)])


def _load_user(user_id: str):
    """The user of a session, or None when the session is not (or no
    longer) valid: unknown user, disabled, nonce replaced since, or logged
    in more than SESSION_LIFETIME ago."""
    id_text, _, nonce = user_id.partition(":")
    if not nonce or not nonce.isascii() or len(id_text) > 18 or not (id_text.isascii() and id_text.isdigit()):
        return None
    login_at = session.get("login_at")
    if (
        not isinstance(login_at, (int, float))
        or not 0 <= time.time() - login_at < current_app.permanent_session_lifetime.total_seconds()
    ):
        return None
    row = db.get_user(db.get_db(), user_id=int(id_text))
    if (
        row is None
        or not row["active"]
        or not row["session_nonce"]
        or not hmac.compare_digest(row["session_nonce"], nonce)
    ):
        return None
    return User(row)


def init_app(app) -> None:
    """Call before anything else that registers before_request functions
    (CSRFProtect), so that the login check runs first."""
    for key, value in LOGIN_THROTTLE_DEFAULTS.items():
        app.config.setdefault(key, value)
    manager = LoginManager()
    manager.login_view = "auth.login"
    manager.login_message = "Please log in to see the reports."
    manager.session_protection = "strong"
    manager.user_loader(_load_user)
    manager.init_app(app)

    @app.before_request
    def require_login():
        # request.endpoint is None for a URL that matches nothing (404/405)
        if request.endpoint is None or request.endpoint in PUBLIC_ENDPOINTS or current_user.is_authenticated:
            return None
        if request.endpoint == "auth.logout":
            session.clear()
            return redirect(url_for("auth.login"))
        return manager.unauthorized()


def admin_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        if not current_user.is_authenticated or not current_user.is_admin:
            abort(403, description="Only an administrator may do this.")
        return view(*args, **kwargs)

    wrapped.admin_only = True  # found by the tests' URL-map sweep
    return wrapped


# Where a login may lead: a path on this site, "/" and then at most 1,999
# printable ASCII characters other than space and backslash ("!" to "[" and
# "]" to "~"), not "//" (another host).  Browsers drop tabs and newlines
# ("/\t/evil" is "//evil") and read a backslash as "/"; a Location header
# cannot hold CR or LF, and a very long one can be too big for a proxy.
LOCAL_PATH = re.compile(r"/(?!/)[!-\[\]-~]{0,1999}")


def _safe_next(target: str | None) -> str:
    """``target`` when it is a local path, otherwise the reports index."""
    if target and LOCAL_PATH.fullmatch(target):
        return target
    return url_for("reports.index")


def throttle_key(username: str) -> str:
    """The user name as its failed logins are counted."""
    return username.strip().casefold()


def locked_until(conn, username: str, now: float) -> float | None:
    """When the lock-out of the user name ends (a time.time() value), or
    None when its failed logins do not lock it out.  The same count as
    db.begin_login_attempt makes; the limit per address is not looked at."""
    config = current_app.config
    window = config["LOGIN_FAILURE_WINDOW_SECONDS"]
    wait = db._retry_after(
        conn, "username", throttle_key(username), now - window, config["LOGIN_MAX_FAILURES_PER_USER"], window, now
    )
    return now + wait if wait else None


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        conn = db.get_db()
        config = current_app.config
        name_key = throttle_key(form.username.data)
        address = request.remote_addr or "unknown"
        attempt = db.begin_login_attempt(
            conn,
            name_key,
            address,
            now=time.time(),
            window=config["LOGIN_FAILURE_WINDOW_SECONDS"],
            per_user=config["LOGIN_MAX_FAILURES_PER_USER"],
            per_address=config["LOGIN_MAX_FAILURES_PER_ADDRESS"],
        )
        if attempt.attempt_id is None:
            # The password is not even checked, and the answer is the same
            # whether or not the user exists.
            current_app.logger.warning("login refused (throttled) from %s", address)
            minutes = -(-attempt.retry_after // 60)
            flash(TOO_MANY_FAILURES.format(minutes=minutes), "error")
            return (render_template("auth/login.html", form=form), 429, {"Retry-After": str(attempt.retry_after)})
        row = db.get_user(conn, username=form.username.data.strip())
        if row is None:
            check_password_hash(_dummy_hash(), form.password.data)
        elif check_password_hash(row["password_hash"], form.password.data) and row["active"]:
            db.login_succeeded(conn, name_key)
            session.clear()  # nothing from before the login carries over
            login_user(User(row))
            session["login_at"] = time.time()
            session.permanent = True  # the cookie expires with the session
            return redirect(_safe_next(request.args.get("next")))
        # The name is not logged: people type passwords into it by mistake.
        current_app.logger.warning("failed login from %s", address)
        flash("Unknown user name or wrong password.", "error")
        status = 401
    elif request.method == "POST":
        status = 400
    if request.args.get("logged_out") == "1" and request.method == "GET":
        flash("You have logged out.", "info")
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
def logout():
    """Ends the session: this user's sessions everywhere stop being
    accepted (new nonce) and the cookie is deleted."""
    db.end_sessions(db.get_db(), current_user.id)
    logout_user()
    session.clear()  # an empty session: Flask deletes the cookie
    return redirect(url_for("auth.login", logged_out=1))
