"""The JSON shapes API consumers depend on; datetimes are ISO-8601 UTC with Z."""

from webapp.timeutil import isoformat_z


def user_to_json(user):
    return {"id": str(user.id), "email": user.email, "role": user.role, "timezone": user.timezone,
            "disabled": bool(user.disabled), "created_at": isoformat_z(user.created_at)}


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
    }
    if with_history:
        data["attempts_log"] = [attempt_to_json(i, a) for i, a in enumerate(job.attempts_log, start=1)]
    return data


def page_to_json(items, total, page, per_page, to_json):
    return {"items": [to_json(item) for item in items], "total": total, "page": page, "per_page": per_page}
