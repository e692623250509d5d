"""Admins: every user's schedules; pause any of them."""

from flask import render_template

from webapp.admin.blueprint import bp
from webapp.pages.schedules import act
from webapp.services.accounts import users
from webapp.services.recurring import schedules

PER_PAGE = 100


@bp.get("/schedules")
def schedules_page():
    """All schedules, newest first, with their owner, next runs and a pause button."""
    items, total = schedules.list_schedules(per_page=PER_PAGE)
    owners = users.emails_by_id([schedule.owner_id for schedule in items])
    return render_template("schedules/index.html", items=items, total=total, admin_view=True, owners=owners)


@bp.post("/schedules/<schedule_id>/pause")
def pause_schedule(schedule_id):
    """Pause anyone's schedule; its owner can resume it."""
    return act(schedule_id, None, lambda: schedules.set_status(schedule_id, None, "paused"), "Paused.")
