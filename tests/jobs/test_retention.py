"""Retention: the sweep deletes finished jobs RETENTION_DAYS after their last change, in small batches, never earlier.

Real job documents in the suite's FerretDB, with `updated_at` (the last change) set on either side of the
cutoff; the periodic sweep (tasks/sweeper.sweep_once) or webapp.services.jobs.retention does the deleting.
"""

from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
from bson import ObjectId

DAYS = 90


def stored(subject, status, last_change, owner_id=None, next_attempt_at=None, **fields):
    """A job as the app leaves it in `status`, last changed at `last_change`, with one attempt in its history."""
    from webapp.models import Job

    job = Job(
        owner_id=owner_id or ObjectId(),
        to=["reader@example.com"],
        subject=subject,
        body="b",
        send_at=last_change,
        next_attempt_at=next_attempt_at or last_change,
        message_id=f"<{subject}@x>",
        status=status,
        attempts=1,
        created_at=last_change - timedelta(minutes=5),
        updated_at=last_change,
        attempts_log=[{"worker": "w", "started_at": last_change, "finished_at": last_change, "outcome": "sent"}],
        **fields,
    )
    job.save(force_insert=True)
    return job


def subjects():
    from webapp.models import Job

    return sorted(job.subject for job in Job.objects)


@pytest.fixture()
def now():
    return datetime.now(UTC).replace(microsecond=0)


def test_the_sweep_deletes_finished_jobs_past_retention_and_nothing_younger_or_unfinished(app, now, monkeypatch):
    from tasks.sweeper import sweep_once

    ages = {
        "89 days": timedelta(days=89),
        "90 days less a minute": timedelta(days=DAYS, minutes=-1),
        "90 days and a minute": timedelta(days=DAYS, minutes=1),
        "91 days": timedelta(days=91),
    }
    for status in ("COMPLETED", "FAILED", "CANCELLED"):
        for age, delta in ages.items():
            stored(f"{status} {age}", status, now - delta)
    # Unfinished jobs are never deleted, however long ago they last changed (scheduled far ahead,
    # sending under a live lease, waiting for an admin).
    long_ago = now - timedelta(days=400)
    stored("PENDING 400 days", "PENDING", long_ago, next_attempt_at=now + timedelta(days=30))
    stored(
        "RUNNING 400 days",
        "RUNNING",
        long_ago,
        lease_token="t",
        lease_owner="w",
        lease_expires_at=now + timedelta(hours=1),
    )
    stored("IN_DOUBT 400 days", "IN_DOUBT", long_ago)

    monkeypatch.setitem(app.config, "RETENTION_DAYS", DAYS)
    assert sweep_once(app)["deleted"] == 6

    kept = [
        f"{status} {age}"
        for status in ("CANCELLED", "COMPLETED", "FAILED")
        for age in ("89 days", "90 days less a minute")
    ]
    assert subjects() == sorted(kept + ["IN_DOUBT 400 days", "PENDING 400 days", "RUNNING 400 days"])
    from webapp.models import Job

    # A kept job keeps its whole history.
    assert [a.outcome for a in Job.objects.get(subject="FAILED 89 days").attempts_log] == ["sent"]
    assert sweep_once(app)["deleted"] == 0


def test_retention_works_in_small_batches_oldest_first(app, now):
    from webapp.services.jobs import retention

    for n in range(7):
        stored(f"old {n}", "COMPLETED", now - timedelta(days=100 + n))
    stored("young", "COMPLETED", now - timedelta(days=10))

    assert retention.purge_batch(DAYS, batch=3) == 3
    assert subjects() == ["old 0", "old 1", "old 2", "old 3", "young"]  # the oldest went first
    assert retention.purge(DAYS, batches=1, batch=3) == 3
    assert retention.purge(DAYS, batches=5, batch=3) == 1  # stops at the first empty batch
    assert subjects() == ["young"]


def test_retention_0_keeps_every_job(app, now, monkeypatch):
    from tasks.sweeper import sweep_once

    stored("ancient", "COMPLETED", now - timedelta(days=3000))
    monkeypatch.setitem(app.config, "RETENTION_DAYS", 0)
    assert sweep_once(app)["deleted"] == 0
    assert subjects() == ["ancient"]


def test_a_job_requeued_between_the_read_and_the_delete_stays(app, now, monkeypatch):
    from webapp.models import Job
    from webapp.services.jobs import actions
    from webapp.services.jobs import retention

    failed = stored("failed long ago", "FAILED", now - timedelta(days=120))
    stored("completed long ago", "COMPLETED", now - timedelta(days=120))
    real = Job._get_collection()

    class RequeuedMidway:
        """The real collection; after the read of the FAILED jobs, an admin requeues one (a real write)."""

        def find(self, query, *args, **kwargs):
            found = list(real.find(query, *args, **kwargs))
            if query.get("status") == "FAILED":
                actions.requeue_job(str(failed.id), 5)
            return found

        def __getattr__(self, name):
            return getattr(real, name)

    monkeypatch.setattr(Job, "_get_collection", classmethod(lambda cls: RequeuedMidway()))
    assert retention.purge_batch(DAYS) == 1
    monkeypatch.undo()
    assert subjects() == ["failed long ago"]
    assert Job.objects.get(id=failed.id).status == "PENDING"


def test_deleted_jobs_leave_their_owners_open_tables(app, now):
    from webapp.models import User
    from webapp.services.accounts import users
    from webapp.services.jobs import retention

    owner = users.register("keeper@example.com", "correct-horse-9")
    stored("old", "COMPLETED", now - timedelta(days=200), owner_id=owner.id)
    before = User.objects.get(id=owner.id).jobs_mark or 0
    assert retention.purge(DAYS) == 1
    assert User.objects.get(id=owner.id).jobs_mark == before + 1
