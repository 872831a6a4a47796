"""Administration: the users, and unlocking a user name locked out by
failed logins (as ``ctv-bookedbiz users unlock`` does).  Admins only."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from wtforms.validators import InputRequired
from wtforms.widgets import HiddenInput

from .. import db
from . import auth
from .formatting import when

bp = Blueprint("admin", __name__, url_prefix="/admin")


class UnlockForm(FlaskForm):
    """The user to unlock, and the CSRF token."""

    username = auth.TextField(widget=HiddenInput(), validators=[InputRequired()])


@bp.get("/users")
@auth.admin_required
def users():
    conn = db.get_db()
    now = time.time()
    rows = []
    for user in db.list_users(conn):
        until = auth.locked_until(conn, user["username"], now)
        if until is not None:
            until = when(datetime.fromtimestamp(until, UTC).isoformat())
        rows.append((user, until))
    return render_template("admin/users.html", users=rows, form=UnlockForm())


@bp.post("/users/unlock")
@auth.admin_required
def unlock():
    form = UnlockForm()
    if not form.validate_on_submit():
        abort(400, description="The form had expired; please try again.")
    name = form.username.data
    conn = db.get_db()
    if db.get_user(conn, username=name) is None:
        abort(404, description="There is no such user.")
    cleared = db.clear_login_failures(conn, auth.throttle_key(name))
    flash(f"Cleared {cleared} failed login(s) of {name}.", "info")
    return redirect(url_for("admin.users"))
