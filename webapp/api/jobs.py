"""A user's own jobs: create, list, read, reschedule, cancel."""

from flask import current_app
from flask import request
from flask_jwt_extended import current_user

from webapp import operations
from webapp.api.blueprint import bp
from webapp.api.blueprint import json_body
from webapp.api.blueprint import login_required
from webapp.api.contract import describe
from webapp.api.schemas import JobDetailOut
from webapp.api.schemas import JobListQuery
from webapp.api.schemas import JobPageOut
from webapp.api.schemas import JobPath
from webapp.api.serialize import job_out
from webapp.api.serialize import page_out
from webapp.services.jobs import actions
from webapp.services.jobs import job_timing
from webapp.services.validation import JobInput
from webapp.services.validation import JobPatch
from webapp.services.validation import parse
from webapp.services.validation import parse_page
from webapp.timeutil import utcnow
from webapp.web.throttle import job_create_throttled


@bp.post("/users/jobs")
@describe(
    body=JobInput,
    responses={201: JobDetailOut},
    errors={
        429: "Too many jobs scheduled in a short time (`too_many_requests`, JOB_CREATE_RATE_LIMIT), "
        "or MAX_PENDING_JOBS_PER_USER jobs pending already (`quota_exceeded`)."
    },
)
@login_required
@job_create_throttled(lambda: current_user.id)
def create_job():
    """Schedule an email; it is queued for its send time right away (429 past the rate limit or the quota)."""
    data, timing = job_timing.parse_new_job(json_body(), current_user, utcnow())
    job = operations.schedule_job(current_app.config, current_user, data, timing)
    return job_out(job, with_history=True), 201


@bp.get("/users/jobs")
@describe(query=JobListQuery, responses={200: JobPageOut})
@login_required
def list_jobs():
    """The caller's jobs, newest first, optionally by status."""
    status = actions.check_status_filter(request.args.get("status"))
    page, per_page = parse_page(request.args)
    items, total = actions.list_jobs(owner_id=current_user.id, status=status, page=page, per_page=per_page)
    return page_out(JobPageOut, items, total, page, per_page, job_out)


@bp.get("/users/jobs/<job_id>")
@describe(path=JobPath, responses={200: JobDetailOut}, errors=[404])
@login_required
def get_job(job_id):
    """One of the caller's jobs with its attempt history."""
    return job_out(actions.get_job(job_id, owner_id=current_user.id), with_history=True)


@bp.patch("/users/jobs/<job_id>")
@describe(
    path=JobPath,
    body=JobPatch,
    responses={200: JobDetailOut},
    errors={
        404: "No such job (another user's counts as none).",
        409: "The job is no longer PENDING (a worker has it, or it is finished).",
    },
)
@login_required
def reschedule_job(job_id):
    """Change a PENDING job (send time, zone, windows, expiry, recipients, subject, body); 409 once it runs."""
    data = parse(JobPatch, json_body())
    job = operations.reschedule_job(current_app.config, current_user, job_id, data)
    return job_out(job, with_history=True)


@bp.post("/users/jobs/<job_id>/cancel")
@describe(
    path=JobPath,
    responses={200: JobDetailOut},
    errors={
        404: "No such job (another user's counts as none).",
        409: "The job can no longer be cancelled (it is running or done).",
    },
)
@login_required
def cancel_job(job_id):
    """Cancel a job that has not been sent yet."""
    return job_out(actions.cancel_job(job_id, owner_id=current_user.id), with_history=True)
