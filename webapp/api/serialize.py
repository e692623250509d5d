"""The JSON shapes API consumers depend on; datetimes are ISO-8601 UTC with Z."""

from webapp.services.schedules import next_runs
from webapp.timeutil import isoformat_z


def user_to_json(user):
    return {"id": str(user.id), "email": user.email, "role": user.role, "timezone": user.timezone,
            "disabled": bool(user.disabled), "windows": windows_to_json(user.windows),
            "created_at": isoformat_z(user.created_at)}


def windows_to_json(windows):
    """Stored windows in the API's shape ([] = any time)."""
    return [window.as_dict() for window in windows or []]


def audit_to_json(entry):
    return {"id": str(entry.id), "at": isoformat_z(entry.at), "action": entry.action, "outcome": entry.outcome,
            "actor_id": str(entry.actor_id) if entry.actor_id else None, "actor_email": entry.actor_email,
            "target_type": entry.target_type, "target_id": entry.target_id, "target_label": entry.target_label,
            "ip": entry.ip, "detail": entry.detail}


def attempt_to_json(number, attempt):
    return {
        "number": number,
        "worker": attempt.worker,
        "started_at": isoformat_z(attempt.started_at),
        "finished_at": isoformat_z(attempt.finished_at),
        "outcome": attempt.outcome,
        "error": attempt.error,
    }


def job_to_json(job, with_history=False):
    data = {
        "id": str(job.id),
        "owner_id": str(job.owner_id),
        "to": list(job.to),
        "subject": job.subject,
        "body": job.body,
        "send_at": isoformat_z(job.send_at),
        "status": job.status,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "last_error": job.last_error,
        "next_attempt_at": isoformat_z(job.next_attempt_at) if job.status == "PENDING" else None,
        "message_id": job.message_id,
        "created_at": isoformat_z(job.created_at),
        "updated_at": isoformat_z(job.updated_at),
        "sent_at": isoformat_z(job.sent_at),
        # Scheduling (webapp.services.timing): when it actually goes out, once windows are applied.
        "timezone": job.timezone or "UTC",
        "windows": windows_to_json(job.windows),
        "expires_at": isoformat_z(job.expires_at),
        "effective_send_at": isoformat_z(job.next_attempt_at),
        "schedule_id": str(job.schedule_id) if job.schedule_id else None,
        "occurrence_at": isoformat_z(job.occurrence_at),
    }
    if with_history:
        data["attempts_log"] = [attempt_to_json(i, a) for i, a in enumerate(job.attempts_log, start=1)]
    return data


def schedule_to_json(schedule):
    return {
        "id": str(schedule.id),
        "owner_id": str(schedule.owner_id),
        "to": list(schedule.to),
        "subject": schedule.subject,
        "body": schedule.body,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "windows": windows_to_json(schedule.windows),
        "starts_at": isoformat_z(schedule.starts_at),
        "until": isoformat_z(schedule.until),
        "max_runs": schedule.max_runs,
        "catch_up": schedule.catch_up,
        "status": schedule.status,
        "runs": schedule.runs,
        "next_runs": [isoformat_z(run) for run in next_runs(schedule)],
        "created_at": isoformat_z(schedule.created_at),
        "updated_at": isoformat_z(schedule.updated_at),
    }


def page_to_json(items, total, page, per_page, to_json):
    return {"items": [to_json(item) for item in items], "total": total, "page": page, "per_page": per_page}
