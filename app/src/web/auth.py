"""Logging in and out; who may do what."""

from __future__ import annotations

from functools import cache, wraps
from urllib.parse import urlsplit

from flask import (Blueprint, abort, current_app, flash, redirect,
                   render_template, request, session, url_for)
from flask_login import (LoginManager, UserMixin, current_user, login_user,
                         logout_user)
from flask_wtf import FlaskForm
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import PasswordField, StringField
from wtforms.validators import InputRequired, Length

from .. import db

bp = Blueprint("auth", __name__, url_prefix="/auth")


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

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class LoginForm(FlaskForm):
    username = StringField("User name",
                           validators=[InputRequired(), Length(max=100)])
    password = PasswordField("Password",
                             validators=[InputRequired(), Length(max=200)])


def _load_user(user_id: str):
    try:
        row = db.get_user(db.get_db(), user_id=int(user_id))
    except ValueError:
        return None
    return User(row) if row is not None and row["active"] else None


def init_app(app) -> None:
    manager = LoginManager()
    manager.login_view = "auth.login"
    manager.login_message = "Please log in to see the reports."
    manager.session_protection = "strong"
    manager.user_loader(_load_user)
    manager.init_app(app)


def admin_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        if not current_user.is_authenticated or not current_user.is_admin:
            abort(403, description="Only an administrator may do this.")
        return view(*args, **kwargs)
    return wrapped


def _safe_next(target: str | None) -> str:
    """Only local paths are followed after login."""
    if target:
        parts = urlsplit(target)
        if (not parts.scheme and not parts.netloc and target.startswith("/")
                and not target.startswith("//") and "\\" not in target):
            return target
    return url_for("reports.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        row = db.get_user(db.get_db(), username=form.username.data.strip())
        if row is None:
            check_password_hash(_dummy_hash(), form.password.data)
        elif (check_password_hash(row["password_hash"], form.password.data)
              and row["active"]):
            login_user(User(row))
            session.permanent = True  # expires after PERMANENT_SESSION_LIFETIME
            return redirect(_safe_next(request.args.get("next")))
        # The name is not logged: people type passwords into it by mistake.
        current_app.logger.warning("failed login from %s", request.remote_addr)
        flash("Unknown user name or wrong password.", "error")
        status = 401
    elif request.method == "POST":
        status = 400
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
def logout():
    logout_user()
    flash("You have logged out.", "info")
    return redirect(url_for("auth.login"))
