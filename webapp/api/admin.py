"""Admins: everyone's jobs, the users (roles, disable, enable) and the audit log."""

from flask import current_app
from flask import request
from flask_jwt_extended import current_user

from tasks.delivery import schedule_delivery
from webapp.api.blueprint import admin_required
from webapp.api.blueprint import bp
from webapp.api.blueprint import json_body
from webapp.api.serialize import audit_to_json
from webapp.api.serialize import job_to_json
from webapp.api.serialize import page_to_json
from webapp.api.serialize import user_to_json
from webapp.audit_trail import audited
from webapp.services import account_status
from webapp.services import accounts
from webapp.services import audit
from webapp.services import job_counts
from webapp.services import jobs
from webapp.services.validation import RoleInput
from webapp.services.validation import parse
from webapp.services.validation import parse_page
from webapp.timeutil import isoformat_z


@bp.get("/admin/jobs")
@admin_required
def all_jobs():
    """All users' jobs, filterable by status and owner (id or email)."""
    status = jobs.check_status_filter(request.args.get("status"))
    page, per_page = parse_page(request.args)
    owner = accounts.owner_id_for(request.args.get("owner"))
    kept = job_counts.read(current_app.config["JOB_COUNTS_SECONDS"])
    if owner is False:
        items, total = [], 0
    elif owner is None:
        # Everyone's jobs: the total comes from the counts (at most JOB_COUNTS_SECONDS old), not a count of its own.
        items, _ = jobs.list_jobs(status=status, page=page, per_page=per_page, with_total=False)
        total = jobs.total_from_counts(kept.counts, status)
    else:
        items, total = jobs.list_jobs(owner_id=owner, status=status, page=page, per_page=per_page)
    body = page_to_json(items, total, page, per_page, job_to_json)
    body["counts"] = kept.counts
    body["counted_at"] = isoformat_z(kept.counted_at)
    return body


@bp.get("/admin/jobs/<job_id>")
@admin_required
def any_job(job_id):
    """Any job with its attempt history."""
    return job_to_json(jobs.get_job(job_id), with_history=True)


@bp.post("/admin/jobs/<job_id>/retry")
@admin_required
def retry_job(job_id):
    """Requeue a FAILED (or IN_DOUBT) job now."""
    with audited("job_requeue", current_user, ("job", job_id, None)):
        job = jobs.requeue_job(job_id, current_app.config["MAX_ATTEMPTS"])
    schedule_delivery(job.id, job.next_attempt_at, 0)
    return job_to_json(job, with_history=True)


@bp.post("/admin/jobs/<job_id>/close")
@admin_required
def close_job(job_id):
    """Mark an IN_DOUBT job as delivered, without sending it again."""
    with audited("job_close", current_user, ("job", job_id, None)):
        job = jobs.close_in_doubt(job_id)
    return job_to_json(job, with_history=True)


@bp.get("/admin/users")
@admin_required
def users():
    """All users, oldest first, paginated."""
    page, per_page = parse_page(request.args)
    items, total = accounts.list_users(page, per_page)
    return page_to_json(items, total, page, per_page, user_to_json)


@bp.patch("/admin/users/<user_id>/role")
@admin_required
def set_role(user_id):
    """Promote or demote a user; the last admin stays an admin (409)."""
    data = parse(RoleInput, json_body())
    with audited("role_change", current_user, ("user", user_id, None), detail=f"role set to {data.role}") as event:
        user = event.target = accounts.set_role(user_id, data.role)
    return user_to_json(user)


@bp.post("/admin/users/<user_id>/disable")
@admin_required
def disable_user(user_id):
    """Disable an account: no sign-in, its tokens and sessions refused, its jobs held (409: yourself, last admin)."""
    with audited("account_disable", current_user, ("user", user_id, None)) as event:
        user = event.target = account_status.disable_account(user_id, by=current_user)
    return user_to_json(user)


@bp.post("/admin/users/<user_id>/enable")
@admin_required
def enable_user(user_id):
    """Enable an account again; its held jobs that fell due meanwhile are queued now."""
    with audited("account_enable", current_user, ("user", user_id, None)) as event:
        user, due = account_status.enable_account(user_id)
        event.target = user
        event.detail = f"{len(due)} held jobs due, queued now" if due else None
    for job_id, due_at in due:
        schedule_delivery(job_id, due_at, 0)
    return user_to_json(user)


@bp.get("/admin/audit")
@admin_required
def audit_log():
    """The audit log, newest first; `actor` (email or user id) and `action` filter it."""
    page, per_page = parse_page(request.args)
    items, total = audit.list(actor=request.args.get("actor"), action=request.args.get("action"),
                              page=page, per_page=per_page)
    return page_to_json(items, total, page, per_page, audit_to_json)
