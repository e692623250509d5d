"""Admins: all jobs with filters and live counts, a job's detail, requeue and close."""

from flask import current_app
from flask import flash
from flask import make_response
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_login import current_user

from webapp import operations
from webapp.admin.blueprint import bp
from webapp.auth.blueprint import safe_next
from webapp.services.accounts import users
from webapp.services.errors import Conflict
from webapp.services.errors import ValidationFailed
from webapp.services.jobs import actions
from webapp.services.jobs import bulk
from webapp.services.validation import parse
from webapp.timeutil import utcnow
from webapp.web import job_tables
from webapp.web import polling
from webapp.web.htmx import is_partial
from webapp.web.htmx import render_page_or_fragment
from webapp.web.localtime import format_local
from webapp.web.templating import viewer_zone


def _table():
    config = current_app.config
    return job_tables.build(
        request.args,
        "admin.jobs_page",
        "admin.job_rows",
        current_user,
        owner_query=request.args.get("owner", ""),
        overdue_seconds=config["OVERDUE_SECONDS"],
        counts_max_age=config["JOB_COUNTS_SECONDS"],
    )


@bp.get("/jobs")
def jobs_page():
    """Every user's jobs, filterable by status and owner email (or the overdue backlog), with counts."""
    return render_page_or_fragment("admin/jobs.html", "admin/_results.html", table=_table())


@bp.get("/rows")
def old_job_rows():
    """The table's polling URL before it moved under /admin/jobs (tabs opened before an upgrade)."""
    return redirect(url_for("admin.job_rows", **request.args), 308)


@bp.get("/jobs/rows")
def job_rows():
    """The table body with counts and pager out of band; 304 when nothing changed (from the admin's change mark)."""
    mark = job_tables.table_mark(
        current_user, request.args, everyone=True, overdue_seconds=current_app.config["OVERDUE_SECONDS"]
    )
    unchanged = polling.unchanged_by_mark(mark)
    if unchanged is not None:
        return unchanged
    table = _table()
    return polling.answer("admin/_poll.html", table.mark, job_tables.fingerprint(table), table=table)


VERBS = {"send_now": "sent now", "cancel": "cancelled", "reschedule": "rescheduled"}


@bp.post("/jobs/bulk")
def bulk_jobs():
    """Send now, cancel or reschedule the ticked PENDING jobs, or every one the table's filter matches."""
    form = request.form
    data = {"action": form.get("action", ""), "timezone": viewer_zone()}
    if form.get("send_at"):
        data["send_at"] = form["send_at"]
    if form.get("scope") == "all":
        data["filter"] = {
            "status": form.get("status") or None,
            "owner": form.get("owner") or None,
            "overdue": form.get("overdue") == "1",
        }
    else:
        data["ids"] = form.getlist("ids")
    problem = None
    try:
        if data.get("ids") == []:
            raise ValidationFailed("Nothing ticked.", {"ids": "tick some rows, or choose every pending job"})
        result = operations.run_bulk(current_app.config, parse(bulk.BulkInput, data), viewer_zone(), utcnow())
    except ValidationFailed as exc:
        problem = "; ".join(f"{name.replace('_', ' ')} {message}" for name, message in exc.fields.items())
    else:
        message = f"{result.affected} pending job{'s' if result.affected != 1 else ''} {VERBS[result.action]}"
        if result.action == "reschedule":
            message += f" to {format_local(result.queue[0][1], viewer_zone())}" if result.queue else ""
        if data.get("ids") is not None and len(data["ids"]) > result.affected:
            message += f"; {len(data['ids']) - result.affected} ticked were no longer pending"
        message += "."
    if is_partial():
        response = make_response(
            render_template("admin/_bulk_status.html", bulk_message=problem or message, bulk_error=bool(problem)),
            422 if problem else 200,
        )
        if not problem:
            response.headers["HX-Trigger"] = "refresh"  # the table polls at once
        return response
    flash(problem or message, "error" if problem else "success")
    return redirect(safe_next(form.get("next")))


@bp.get("/jobs/<job_id>")
def job_detail(job_id):
    """Any job with its attempt history and owner."""
    mark = job_tables.detail_mark(current_user, job_id, everyone=True)
    if is_partial() and (unchanged := polling.unchanged_by_mark(mark)) is not None:
        return unchanged
    job = actions.get_job(job_id)
    owner = users.get_user(job.owner_id)
    content = job_tables.detail_fingerprint(job)
    context = {
        "job": job,
        "owner": owner,
        "admin_view": True,
        "etag": polling.compose(mark, content),
        "detail_url": url_for("admin.job_detail", job_id=job.id),
    }
    if is_partial():
        return polling.answer("jobs/_detail.html", mark, content, **context)
    return render_template("jobs/detail.html", **context)


@bp.post("/jobs/<job_id>/requeue")
def requeue_job(job_id):
    """Send a FAILED (or IN_DOUBT) job again now, with a fresh set of attempts."""
    return _act(
        job_id,
        "Requeued",
        lambda: operations.requeue_job(current_app.config, current_user, job_id, request.remote_addr),
    )


@bp.post("/jobs/<job_id>/close")
def close_job(job_id):
    """Mark an IN_DOUBT job as delivered, without sending it again."""
    return _act(
        job_id, "Marked as delivered:", lambda: operations.close_in_doubt(current_user, job_id, request.remote_addr)
    )


def _act(job_id, done, action):
    """Run an admin action on a job (webapp.operations audits it); HTMX gets the row back, a form a redirect."""
    try:
        job = action()
        problem, status = None, 200
    except Conflict as exc:
        job, problem, status = actions.get_job(job_id), exc.message, 409
    if is_partial():
        owners = users.emails_by_id([job.owner_id])
        return render_template("admin/_row.html", job=job, owner_emails=owners, problem=problem), status
    flash(problem or f"{done} “{job.subject}”.", "error" if problem else "success")
    return redirect(safe_next(request.form.get("next")))
