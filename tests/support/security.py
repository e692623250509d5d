"""Helpers for the security tests: job payloads and forms a day ahead, the caller's account."""

from datetime import UTC
from datetime import datetime
from datetime import timedelta

ZERO_ID = "000000000000000000000000"  # a well-formed id that names nothing


def in_(seconds):
    """An ISO-8601 time `seconds` from now."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def job_payload(subject="s", send_at=None):
    """An API job, due tomorrow unless `send_at` says otherwise."""
    return {"to": "reader@example.com", "subject": subject, "body": "b", "send_at": send_at or in_(86400)}


def page_form(subject):
    """The schedule form, due tomorrow (UTC)."""
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    return {"to": "reader@example.com", "subject": subject, "body": "b", "send_at": tomorrow, "timezone": "UTC"}


def me(client, headers):
    """GET /api/users/me with these headers: the account, or the error."""
    return client.get("/api/users/me", headers=headers).json


def stored_subjects():
    """The subjects of every stored job, sorted."""
    from webapp.models import Job

    return sorted(job.subject for job in Job.objects)
