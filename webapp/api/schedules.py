"""Recurring schedules: a user's own (create, list, read, change, delete), and admins' view of all."""

from flask import current_app
from flask import request
from flask_jwt_extended import current_user

from tasks.schedules import materialize_schedule
from webapp.api.blueprint import admin_required
from webapp.api.blueprint import bp
from webapp.api.blueprint import json_body
from webapp.api.blueprint import login_required
from webapp.api.serialize import page_to_json
from webapp.api.serialize import schedule_to_json
from webapp.models.schedule import ScheduleStatus
from webapp.services import accounts
from webapp.services import schedules
from webapp.services.schedule_input import ScheduleInput
from webapp.services.schedule_input import SchedulePatch
from webapp.services.validation import parse
from webapp.services.validation import parse_page
from webapp.throttle import job_create_throttled


def _fresh(schedule):
    """Make the schedule's next occurrence now (so it is queued on time), then show it as it is."""
    materialize_schedule(current_app, schedule.id)
    schedule.reload()
    return schedule_to_json(schedule)


@bp.post("/users/schedules")
@login_required
@job_create_throttled(lambda: current_user.id)
def create_schedule():
    """Create a recurring email; its next occurrence is made into a job at once (429 past the rate limit)."""
    data = parse(ScheduleInput, json_body())
    return _fresh(schedules.create_schedule(current_user, data)), 201


@bp.get("/users/schedules")
@login_required
def list_schedules():
    """The caller's schedules, newest first, with their next runs."""
    page, per_page = parse_page(request.args)
    items, total = schedules.list_schedules(owner_id=current_user.id, page=page, per_page=per_page)
    return page_to_json(items, total, page, per_page, schedule_to_json)


@bp.get("/users/schedules/<schedule_id>")
@login_required
def get_schedule(schedule_id):
    """One of the caller's schedules."""
    return schedule_to_json(schedules.get_schedule(schedule_id, owner_id=current_user.id))


@bp.patch("/users/schedules/<schedule_id>")
@login_required
def update_schedule(schedule_id):
    """Change a schedule or pause / resume it; its occurrences not yet running are made again."""
    data = parse(SchedulePatch, json_body())
    return _fresh(schedules.update_schedule(schedule_id, current_user.id, data, current_user))


@bp.delete("/users/schedules/<schedule_id>")
@login_required
def delete_schedule(schedule_id):
    """Delete a schedule; its occurrences not yet running are cancelled, the others stay."""
    cancelled = schedules.delete_schedule(schedule_id, current_user.id)
    return {"deleted": schedule_id, "cancelled_jobs": cancelled}


@bp.get("/admin/schedules")
@admin_required
def all_schedules():
    """Every user's schedules, newest first, optionally of one owner (id or email)."""
    page, per_page = parse_page(request.args)
    owner = accounts.owner_id_for(request.args.get("owner"))
    items, total = ([], 0) if owner is False else schedules.list_schedules(owner_id=owner, page=page,
                                                                             per_page=per_page)
    return page_to_json(items, total, page, per_page, schedule_to_json)


@bp.post("/admin/schedules/<schedule_id>/pause")
@admin_required
def pause_schedule(schedule_id):
    """Pause anyone's schedule: no occurrence is made, those not yet running are cancelled."""
    return schedule_to_json(schedules.set_status(schedule_id, None, ScheduleStatus.PAUSED))
