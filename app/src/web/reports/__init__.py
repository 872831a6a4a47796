"""The reports blueprint.  Every route in it requires a logged-in user."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user, login_required

from ..auth import admin_required
from . import ae, languages, months, revenue

bp = Blueprint("reports", __name__, url_prefix="/reports")

REPORTS = (
    (
        "reports.revenue",
        "Revenue by customer",
        "Gross or net revenue per customer and broadcast month for a year, with filters, totals and a chart.",
    ),
    ("reports.ae", "AE performance", "Booked against budget by month and quarter, pacing, year over year."),
    ("reports.languages", "Language and market", "Revenue and spot counts by language and by market."),
    ("reports.months", "Month status", "Each broadcast month open or closed, its totals and last import."),
)


@bp.before_request
@login_required
def require_login():
    """Runs before every view of this blueprint: no report route can be
    reached without logging in, including ones added later."""


@bp.get("/")
def index():
    return render_template("reports/index.html", reports=REPORTS, user=current_user)


bp.add_url_rule("/revenue", "revenue", revenue.view)
bp.add_url_rule("/ae", "ae", ae.view)
bp.add_url_rule("/languages", "languages", languages.view)
bp.add_url_rule("/months", "months", months.view)
bp.add_url_rule("/months/<month>/close", "close_month", admin_required(months.close), methods=["POST"])
bp.add_url_rule("/months/<month>/reopen", "reopen_month", admin_required(months.reopen), methods=["POST"])
