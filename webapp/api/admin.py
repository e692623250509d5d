"""Admins: everyone's jobs, the users (roles, disable, enable) and the audit log."""

from flask import current_app
from flask import request
from flask_jwt_extended import current_user

from webapp import operations
from webapp.api.blueprint import admin_required
from webapp.api.blueprint import bp
from webapp.api.blueprint import json_body
from webapp.api.contract import describe
from webapp.api.schedule_schemas import BulkOut
from webapp.api.schemas import AdminJobListQuery
from webapp.api.schemas import AdminJobPageOut
from webapp.api.schemas import AuditPageOut
from webapp.api.schemas import AuditQuery
from webapp.api.schemas import JobDetailOut
from webapp.api.schemas import JobPath
from webapp.api.schemas import PageQuery
from webapp.api.schemas import UserOut
from webapp.api.schemas import UserPageOut
from webapp.api.schemas import UserPath
from webapp.api.serialize import audit_out
from webapp.api.serialize import job_out
from webapp.api.serialize import page_out
from webapp.api.serialize import user_out
from webapp.services import audit
from webapp.services.accounts import disabling
from webapp.services.accounts import users as accounts  # `users` is the view below
from webapp.services.jobs import actions
from webapp.services.jobs import bulk
from webapp.services.jobs import job_timing
from webapp.services.monitoring import job_counts
from webapp.services.validation import RoleInput
from webapp.services.validation import parse
from webapp.services.validation import parse_page
from webapp.timeutil import utcnow
from webapp.web.audit_trail import audited


@bp.get("/admin/jobs")
@describe(query=AdminJobListQuery, responses={200: AdminJobPageOut})
@admin_required
def all_jobs():
    """All users' jobs, filterable by status and owner (id or email)."""
    status = actions.check_status_filter(request.args.get("status"))
    page, per_page = parse_page(request.args)
    owner = accounts.owner_id_for(request.args.get("owner"))
    kept = job_counts.read(current_app.config["JOB_COUNTS_SECONDS"])
    if owner is False:
        items, total = [], 0
    elif owner is None:
        # Everyone's jobs: the total comes from the counts (at most JOB_COUNTS_SECONDS old), not a count of its own.
        items, _ = actions.list_jobs(status=status, page=page, per_page=per_page, with_total=False)
        total = actions.total_from_counts(kept.counts, status)
    else:
        items, total = actions.list_jobs(owner_id=owner, status=status, page=page, per_page=per_page)
    return page_out(
        AdminJobPageOut, items, total, page, per_page, job_out, counts=kept.counts, counted_at=kept.counted_at
    )


@bp.post("/admin/bulk/jobs")
@describe(body=bulk.BulkInput, responses={200: BulkOut})
@admin_required
def bulk_jobs():
    """Send now, cancel or reschedule many PENDING jobs: `ids`, or every job `filter` matches."""
    data = parse(bulk.BulkInput, json_body())
    result = operations.run_bulk(current_app.config, data, job_timing.account_zone(current_user), utcnow())
    return BulkOut(action=result.action, affected=result.affected, queued=len(result.queue))


@bp.get("/admin/jobs/<job_id>")
@describe(path=JobPath, responses={200: JobDetailOut}, errors={404: "No such job."})
@admin_required
def any_job(job_id):
    """Any job with its attempt history."""
    return job_out(actions.get_job(job_id), with_history=True)


@bp.post("/admin/jobs/<job_id>/retry")
@describe(
    path=JobPath,
    responses={200: JobDetailOut},
    errors={404: "No such job.", 409: "Only a FAILED or IN_DOUBT job can be requeued."},
)
@admin_required
def retry_job(job_id):
    """Requeue a FAILED (or IN_DOUBT) job now."""
    job = operations.requeue_job(current_app.config, current_user, job_id, request.remote_addr)
    return job_out(job, with_history=True)


@bp.post("/admin/jobs/<job_id>/close")
@describe(
    path=JobPath,
    responses={200: JobDetailOut},
    errors={404: "No such job.", 409: "Only an IN_DOUBT job can be closed."},
)
@admin_required
def close_job(job_id):
    """Mark an IN_DOUBT job as delivered, without sending it again."""
    with audited("job_close", current_user, ("job", job_id, None)):
        job = actions.close_in_doubt(job_id)
    return job_out(job, with_history=True)


@bp.get("/admin/users")
@describe(query=PageQuery, responses={200: UserPageOut})
@admin_required
def users():
    """All users, oldest first, paginated."""
    page, per_page = parse_page(request.args)
    items, total = accounts.list_users(page, per_page)
    return page_out(UserPageOut, items, total, page, per_page, user_out)


@bp.patch("/admin/users/<user_id>/role")
@describe(
    path=UserPath,
    body=RoleInput,
    responses={200: UserOut},
    errors={404: "No such user.", 409: "The last admin cannot be demoted."},
)
@admin_required
def set_role(user_id):
    """Promote or demote a user; the last admin stays an admin (409)."""
    data = parse(RoleInput, json_body())
    with audited("role_change", current_user, ("user", user_id, None), detail=f"role set to {data.role}") as event:
        user = event.target = accounts.set_role(user_id, data.role)
    return user_out(user)


@bp.post("/admin/users/<user_id>/disable")
@describe(
    path=UserPath,
    responses={200: UserOut},
    errors={404: "No such user.", 409: "You cannot disable yourself, nor the last admin."},
)
@admin_required
def disable_user(user_id):
    """Disable an account: no sign-in, its tokens and sessions refused, its jobs held (409: yourself, last admin)."""
    with audited("account_disable", current_user, ("user", user_id, None)) as event:
        user = event.target = disabling.disable_account(user_id, by=current_user)
    return user_out(user)


@bp.post("/admin/users/<user_id>/enable")
@describe(path=UserPath, responses={200: UserOut}, errors={404: "No such user."})
@admin_required
def enable_user(user_id):
    """Enable an account again; its held jobs that fell due meanwhile are queued now."""
    user = operations.enable_account(current_user, user_id, request.remote_addr)
    return user_out(user)


@bp.get("/admin/audit")
@describe(query=AuditQuery, responses={200: AuditPageOut})
@admin_required
def audit_log():
    """The audit log, newest first; `actor` (email or user id) and `action` filter it."""
    page, per_page = parse_page(request.args)
    items, total = audit.list(
        actor=request.args.get("actor"), action=request.args.get("action"), page=page, per_page=per_page
    )
    return page_out(AuditPageOut, items, total, page, per_page, audit_out)
