"""My jobs: the schedule form, the live table, a job's detail, cancel."""

from flask import current_app
from flask import flash
from flask import make_response
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_login import current_user
from flask_login import login_required

from tasks.schedules import materialize_schedule
from webapp import operations
from webapp.auth.blueprint import safe_next
from webapp.pages.blueprint import bp
from webapp.pages.forms import form_values
from webapp.pages.forms import input_errors
from webapp.pages.forms import parse_job_form
from webapp.pages.preview import preview_errors
from webapp.pages.preview import timing_preview as build_preview
from webapp.services.accounts import users
from webapp.services.errors import Conflict
from webapp.services.errors import QuotaExceeded
from webapp.services.errors import ValidationFailed
from webapp.services.jobs import actions
from webapp.services.jobs import change_marks
from webapp.services.recurring import schedules
from webapp.timeutil import utcnow
from webapp.web import job_tables
from webapp.web import polling
from webapp.web.htmx import is_partial
from webapp.web.htmx import render_page_or_fragment
from webapp.web.localtime import format_local
from webapp.web.localtime import is_valid_zone
from webapp.web.throttle import job_create_throttled

# The table refreshes itself when this event fires (see templates/jobs/_results.html).
JOBS_CHANGED = "jobs-changed"


def _table():
    return job_tables.build(request.args, "pages.jobs_page", "pages.job_rows", current_user, owner_id=current_user.id)


@bp.get("/")
def index():
    """Send people to their jobs, or to sign in first."""
    return redirect(url_for("pages.jobs_page" if current_user.is_authenticated else "auth.login"))


@bp.get("/jobs")
@login_required
def jobs_page():
    """The form and the table; a filter or page change from HTMX gets only the table."""
    return render_page_or_fragment("jobs/index.html", "jobs/_results.html", table=_table(), values={}, errors={})


@bp.get("/jobs/rows")
@login_required
def job_rows():
    """The table body (and its counts and pager, out of band); 304 when nothing changed.

    An unchanged table is answered from the account's change mark, read with the session:
    no other query (webapp/web/polling.py).
    """
    unchanged = polling.unchanged_by_mark(job_tables.table_mark(current_user, request.args))
    if unchanged is not None:
        return unchanged
    table = _table()
    return polling.answer("jobs/_poll.html", table.mark, job_tables.fingerprint(table), table=table)


@bp.get("/jobs/preview")
@login_required
def timing_preview():
    """What the form's times mean, live as they are typed (HTMX, debounced): no write, no queue."""
    preview = build_preview(form_values(request.args), current_user, utcnow())
    return render_template("jobs/_preview.html", preview=preview, errors=preview_errors(preview))


def _form_again(values, errors=None, problem=None):
    """The schedule form with what was typed: alone for HTMX, else within the whole page."""
    if is_partial():
        return render_template("jobs/_form.html", values=values, errors=errors or {}, problem=problem)
    return render_template("jobs/index.html", table=_table(), values=values, errors=errors or {}, problem=problem)


def _form_refused(message):
    """Past the scheduling rate limit: the form again, with the message inline (webapp.web.throttle)."""
    return _form_again(form_values(request.form), problem=message)


@bp.post("/jobs")
@login_required
@job_create_throttled(lambda: current_user.id, page=_form_refused)
def create_job():
    """Schedule an email (or a repeating one) from the form; errors (and the quota) come back inline."""
    values = form_values(request.form)
    try:
        parsed = parse_job_form(values, current_user, utcnow())
        if parsed.schedule_input is not None:
            schedule = schedules.create_schedule(current_user, parsed.schedule_input)
    except ValidationFailed as exc:
        return _form_again(values, errors=input_errors(exc.fields)), 422
    if values["timezone"] and is_valid_zone(values["timezone"]) and values["timezone"] != current_user.timezone:
        users.set_timezone(current_user, values["timezone"])  # the browser's zone: the tables show it
    config = current_app.config
    if parsed.schedule_input is not None:
        materialize_schedule(current_app, schedule.id)
        schedule.reload()
        runs = schedules.next_runs(schedule, count=1)
        first = f" from {format_local(runs[0], parsed.zone)} ({parsed.zone})" if runs else ""
        message = f"Repeating “{schedule.subject}”{first}. See Schedules to pause or delete it."
    else:
        try:
            job = operations.schedule_job(config, current_user, parsed.job_input, parsed.timing)
        except QuotaExceeded as exc:
            response = make_response(_form_again(values, problem=exc.message), exc.status)
            response.headers["Retry-After"] = str(exc.retry_after)
            return response
        # The table below is about to refresh: its mark must have moved already (the API's create waits).
        change_marks.bump([current_user.id])
        message = f"Scheduled “{job.subject}” for {format_local(job.send_at, parsed.zone)} ({parsed.zone})."
        if job.next_attempt_at != job.send_at:
            message += f" Its windows hold it until {format_local(job.next_attempt_at, parsed.zone)}."
    if is_partial():
        response = make_response(render_template("jobs/_form.html", values={}, errors={}, created=message), 201)
        response.headers["HX-Trigger"] = JOBS_CHANGED
        return response
    flash(message, "success")
    return redirect(url_for("pages.jobs_page"))


@bp.get("/jobs/<job_id>")
@login_required
def job_detail(job_id):
    """One job with its attempt history; refreshes itself while the job can still change."""
    mark = job_tables.detail_mark(current_user, job_id)
    if is_partial() and (unchanged := polling.unchanged_by_mark(mark)) is not None:
        return unchanged
    job = actions.get_job(job_id, owner_id=current_user.id)
    content = job_tables.detail_fingerprint(job)
    context = {
        "job": job,
        "detail_url": url_for("pages.job_detail", job_id=job.id),
        "etag": polling.compose(mark, content),
    }
    if is_partial():
        return polling.answer("jobs/_detail.html", mark, content, **context)
    return render_template("jobs/detail.html", **context)


@bp.post("/jobs/<job_id>/cancel")
@login_required
def cancel_job(job_id):
    """Cancel a job that has not started; from the table, answer with the updated row."""
    try:
        job = actions.cancel_job(job_id, owner_id=current_user.id)
        problem, status = None, 200
    except Conflict as exc:
        job, problem, status = actions.get_job(job_id, owner_id=current_user.id), exc.message, 409
    if is_partial():
        return render_template("jobs/_row.html", job=job, problem=problem), status
    if problem:
        flash(problem, "error")
    else:
        flash(f"Cancelled “{job.subject}”.", "success")
    return redirect(safe_next(request.form.get("next")))
