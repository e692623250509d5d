"""My schedules: the repeating emails, their next runs, pause / resume / delete."""

from flask import current_app
from flask import flash
from flask import redirect
from flask import render_template
from flask import url_for
from flask_login import current_user
from flask_login import login_required

from tasks.schedules import materialize_schedule
from webapp.models.schedule import ScheduleStatus
from webapp.pages.blueprint import bp
from webapp.services.errors import Conflict
from webapp.services.recurring import schedules
from webapp.web.htmx import is_partial

PER_PAGE = 100


@bp.get("/schedules")
@login_required
def schedules_page():
    """The user's schedules, newest first, each with its next runs and its actions."""
    items, total = schedules.list_schedules(owner_id=current_user.id, per_page=PER_PAGE)
    return render_template("schedules/index.html", items=items, total=total, admin_view=False)


def act(schedule_id, owner_id, action, done):
    """Run an action on a schedule; HTMX gets the row back (or nothing, once deleted), a form a redirect."""
    try:
        schedule = action()
        problem, status = None, 200
    except Conflict as exc:
        schedule, problem, status = schedules.get_schedule(schedule_id, owner_id), exc.message, 409
    if schedule is not None and problem is None and schedule.status == ScheduleStatus.ACTIVE:
        materialize_schedule(current_app, schedule.id)  # its next occurrence, queued for its time
        schedule.reload()
    if is_partial():
        if schedule is None:
            return "", 200
        return render_template(
            "schedules/_row.html", schedule=schedule, problem=problem, admin_view=owner_id is None
        ), status
    flash(problem or done, "error" if problem else "success")
    return redirect(url_for("admin.schedules_page" if owner_id is None else "pages.schedules_page"))


@bp.post("/schedules/<schedule_id>/pause")
@login_required
def pause_schedule(schedule_id):
    """Pause: nothing more is made, the occurrence waiting to go out is cancelled."""
    return act(
        schedule_id, current_user.id, lambda: schedules.set_status(schedule_id, current_user.id, "paused"), "Paused."
    )


@bp.post("/schedules/<schedule_id>/resume")
@login_required
def resume_schedule(schedule_id):
    """Resume from now on (what was missed while paused is skipped)."""
    return act(
        schedule_id, current_user.id, lambda: schedules.set_status(schedule_id, current_user.id, "active"), "Resumed."
    )


@bp.post("/schedules/<schedule_id>/delete")
@login_required
def delete_schedule(schedule_id):
    """Delete: the occurrence waiting to go out is cancelled; those sent stay in My jobs."""

    def delete():
        schedules.delete_schedule(schedule_id, current_user.id)

    return act(schedule_id, current_user.id, delete, "Deleted.")
