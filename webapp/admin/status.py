"""The admin landing page: is email going out on time? Figures, charts, workers, the pause switch."""

from flask import current_app
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_login import current_user

from webapp import operations
from webapp.admin import status_board
from webapp.admin.blueprint import bp
from webapp.timeutil import parse_iso8601
from webapp.web.htmx import is_partial
from webapp.web.htmx import render_if_changed
from webapp.web.htmx import render_page_or_fragment

# Query arguments of the jobs table, which lived at /admin before the status page did.
JOB_TABLE_ARGS = {"status", "owner", "page", "per_page", "overdue"}


@bp.app_template_filter("duration")
def duration(seconds):
    """`300` → `5 min`, `90` → `90 s`, `7200` → `2 h`: a setting or an age, in words."""
    seconds = int(seconds or 0)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


@bp.app_template_filter("from_iso")
def from_iso(text):
    """An ISO-8601 string from the figures back to a datetime, for the `when` macro (None stays None)."""
    return parse_iso8601(text) if text else None


@bp.get("")
def status_page():
    """Counts, overdue backlog, throughput and history, lateness, workers, SMTP, and the pause switch."""
    if JOB_TABLE_ARGS & set(request.args):  # an old link to the jobs table (/admin?status=FAILED)
        return redirect(url_for("admin.jobs_page", **request.args))
    board = status_board.build(current_app.config)
    return render_page_or_fragment("admin/status.html", "admin/_board.html", board=board)


@bp.get("/status/board")
def status_board_poll():
    """The board alone, for the page's poll; 304 when nothing on it changed."""
    board = status_board.build(current_app.config)
    return render_if_changed("admin/_board.html", board.etag, board=board)


@bp.post("/delivery/pause")
def pause_delivery():
    """Pause delivery: jobs stay PENDING, sends in flight finish."""
    operations.pause_delivery(current_user, request.remote_addr)
    return _switched("Delivery is paused. Jobs wait, PENDING, until you resume it.")


@bp.post("/delivery/resume")
def resume_delivery():
    """Resume delivery and queue every due job at once."""
    queued = operations.resume_delivery(current_user, request.remote_addr)
    return _switched(f"Delivery resumed: {queued} due job{'s' if queued != 1 else ''} queued now.")


def _switched(message):
    """HTMX gets the board back with the message; a plain form post is redirected to the page."""
    if is_partial():
        board = status_board.build(current_app.config)
        return render_template("admin/_board.html", board=board, notice=message)
    flash(message, "success")
    return redirect(url_for("admin.status_page"))
