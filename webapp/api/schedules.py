"""Recurring schedules: a user's own (create, list, read, change, delete), and admins' view of all."""

from flask import current_app
from flask import request
from flask_jwt_extended import current_user

from tasks.schedules import materialize_schedule
from webapp.api.blueprint import admin_required
from webapp.api.blueprint import bp
from webapp.api.blueprint import json_body
from webapp.api.blueprint import login_required
from webapp.api.contract import describe
from webapp.api.schedule_schemas import AdminScheduleListQuery
from webapp.api.schedule_schemas import ScheduleDeletedOut
from webapp.api.schedule_schemas import ScheduleOut
from webapp.api.schedule_schemas import SchedulePageOut
from webapp.api.schedule_schemas import SchedulePath
from webapp.api.schemas import PageQuery
from webapp.api.serialize import page_out
from webapp.api.serialize import schedule_out
from webapp.models.schedule import ScheduleStatus
from webapp.services.accounts import users
from webapp.services.recurring import schedules
from webapp.services.recurring.inputs import ScheduleInput
from webapp.services.recurring.inputs import SchedulePatch
from webapp.services.validation import parse
from webapp.services.validation import parse_page
from webapp.web.throttle import job_create_throttled


def _fresh(schedule):
    """Make the schedule's next occurrence now (so it is queued on time), then show it as it is."""
    materialize_schedule(current_app, schedule.id)
    schedule.reload()
    return schedule_out(schedule)


@bp.post("/users/schedules")
@describe(
    body=ScheduleInput,
    responses={201: ScheduleOut},
    tag="Schedules",
    errors={429: "Too many jobs or schedules made in a short time (`too_many_requests`, JOB_CREATE_RATE_LIMIT)."},
)
@login_required
@job_create_throttled(lambda: current_user.id)
def create_schedule():
    """Create a recurring email; its next occurrence is made into a job at once (429 past the rate limit)."""
    data = parse(ScheduleInput, json_body())
    return _fresh(schedules.create_schedule(current_user, data)), 201


@bp.get("/users/schedules")
@describe(query=PageQuery, responses={200: SchedulePageOut}, tag="Schedules")
@login_required
def list_schedules():
    """The caller's schedules, newest first, with their next runs."""
    page, per_page = parse_page(request.args)
    items, total = schedules.list_schedules(owner_id=current_user.id, page=page, per_page=per_page)
    return page_out(SchedulePageOut, items, total, page, per_page, schedule_out)


@bp.get("/users/schedules/<schedule_id>")
@describe(path=SchedulePath, responses={200: ScheduleOut}, errors=[404], tag="Schedules")
@login_required
def get_schedule(schedule_id):
    """One of the caller's schedules."""
    return schedule_out(schedules.get_schedule(schedule_id, owner_id=current_user.id))


@bp.patch("/users/schedules/<schedule_id>")
@describe(
    path=SchedulePath,
    body=SchedulePatch,
    responses={200: ScheduleOut},
    tag="Schedules",
    errors={
        404: "No such schedule (another user's counts as none).",
        409: "Changed at the same moment by another request; load it again.",
    },
)
@login_required
def update_schedule(schedule_id):
    """Change a schedule or pause / resume it; its occurrences not yet running are made again."""
    data = parse(SchedulePatch, json_body())
    return _fresh(schedules.update_schedule(schedule_id, current_user.id, data, current_user))


@bp.delete("/users/schedules/<schedule_id>")
@describe(path=SchedulePath, responses={200: ScheduleDeletedOut}, errors=[404], tag="Schedules")
@login_required
def delete_schedule(schedule_id):
    """Delete a schedule; its occurrences not yet running are cancelled, the others stay."""
    cancelled = schedules.delete_schedule(schedule_id, current_user.id)
    return ScheduleDeletedOut(deleted=schedule_id, cancelled_jobs=cancelled)


@bp.get("/admin/schedules")
@describe(query=AdminScheduleListQuery, responses={200: SchedulePageOut}, tag="Schedules")
@admin_required
def all_schedules():
    """Every user's schedules, newest first, optionally of one owner (id or email)."""
    page, per_page = parse_page(request.args)
    owner = users.owner_id_for(request.args.get("owner"))
    items, total = ([], 0) if owner is False else schedules.list_schedules(owner_id=owner, page=page, per_page=per_page)
    return page_out(SchedulePageOut, items, total, page, per_page, schedule_out)


@bp.post("/admin/schedules/<schedule_id>/pause")
@describe(
    path=SchedulePath,
    responses={200: ScheduleOut},
    errors={404: "No such schedule.", 409: "The schedule is finished: there is nothing to pause."},
    tag="Schedules",
)
@admin_required
def pause_schedule(schedule_id):
    """Pause anyone's schedule: no occurrence is made, those not yet running are cancelled."""
    return schedule_out(schedules.set_status(schedule_id, None, ScheduleStatus.PAUSED))
