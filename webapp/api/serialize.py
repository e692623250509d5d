"""Documents to answers: build the models of webapp/api/schemas.py from users, jobs and audit entries."""

from webapp.api.schedule_schemas import ScheduleOut
from webapp.api.schemas import AttemptOut
from webapp.api.schemas import AuditEntryOut
from webapp.api.schemas import JobDetailOut
from webapp.api.schemas import JobOut
from webapp.api.schemas import UserOut
from webapp.api.schemas import WindowOut
from webapp.models.job import JobStatus
from webapp.services.recurring.schedules import next_runs


def user_out(user):
    """A user as the API shows it (never the password hash or the session and token generations)."""
    return UserOut(
        id=str(user.id),
        email=user.email,
        role=user.role,
        timezone=user.timezone,
        windows=windows_out(user.windows),
        disabled=bool(user.disabled),
        created_at=user.created_at,
    )


def windows_out(windows):
    """Stored availability windows ([] = any time)."""
    return [WindowOut(**window.as_dict()) for window in windows or []]


def audit_out(entry):
    """One audit log entry."""
    return AuditEntryOut(
        id=str(entry.id),
        at=entry.at,
        action=entry.action,
        outcome=entry.outcome,
        actor_id=str(entry.actor_id) if entry.actor_id else None,
        actor_email=entry.actor_email,
        target_type=entry.target_type,
        target_id=entry.target_id,
        target_label=entry.target_label,
        ip=entry.ip,
        detail=entry.detail,
    )


def attempt_out(number, attempt):
    """One delivery attempt, numbered from 1."""
    return AttemptOut(
        number=number,
        worker=attempt.worker,
        started_at=attempt.started_at,
        finished_at=attempt.finished_at,
        outcome=attempt.outcome,
        error=attempt.error,
    )


def job_out(job, with_history=False):
    """A job; with its attempts (`JobDetailOut`) when `with_history`."""
    fields = {
        "id": str(job.id),
        "owner_id": str(job.owner_id),
        "to": list(job.to),
        "subject": job.subject,
        "body": job.body,
        "send_at": job.send_at,
        "status": job.status,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "last_error": job.last_error,
        "next_attempt_at": job.next_attempt_at if job.status == JobStatus.PENDING else None,
        "message_id": job.message_id,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "sent_at": job.sent_at,
        # Scheduling (webapp.services.scheduling.timing): when it actually goes out, once windows are applied.
        "timezone": job.timezone or "UTC",
        "windows": windows_out(job.windows),
        "expires_at": job.expires_at,
        "effective_send_at": job.next_attempt_at,
        "schedule_id": str(job.schedule_id) if job.schedule_id else None,
        "occurrence_at": job.occurrence_at,
    }
    if not with_history:
        return JobOut(**fields)
    attempts = [attempt_out(number, attempt) for number, attempt in enumerate(job.attempts_log, start=1)]
    return JobDetailOut(**fields, attempts_log=attempts)


def schedule_out(schedule):
    """A recurring schedule with its next 5 runs."""
    return ScheduleOut(
        id=str(schedule.id),
        owner_id=str(schedule.owner_id),
        to=list(schedule.to),
        subject=schedule.subject,
        body=schedule.body,
        cron=schedule.cron,
        timezone=schedule.timezone,
        windows=windows_out(schedule.windows),
        starts_at=schedule.starts_at,
        until=schedule.until,
        max_runs=schedule.max_runs,
        catch_up=schedule.catch_up,
        status=schedule.status,
        runs=schedule.runs,
        next_runs=next_runs(schedule),
        created_at=schedule.created_at,
        updated_at=schedule.updated_at,
    )


def page_out(model, items, total, page, per_page, item_out, **extra):
    """One page of a list as `model` (items, total, page, per_page, and any `extra` fields)."""
    return model(items=[item_out(item) for item in items], total=total, page=page, per_page=per_page, **extra)
