"""The counts per status over all jobs: kept in one document, recounted at most every JOB_COUNTS_SECONDS.

Real FerretDB and the API through the Flask test client; the last test runs a real consumer process,
whose maintenance thread does the recounting.
"""

import os
import time
from datetime import timedelta

from bson import ObjectId

from tests.support.consumer import HueyConsumer
from tests.support.pages import PageClient


def add_jobs(count, status="PENDING"):
    from webapp.models import Job
    from webapp.timeutil import utcnow

    now = utcnow()
    for n in range(count):
        Job(
            owner_id=ObjectId(),
            to=["a@example.com"],
            subject=f"job {n}",
            body="b",
            send_at=now,
            next_attempt_at=now + timedelta(days=1),
            message_id=f"<{ObjectId()}@x>",
            status=status,
        ).save()


def age_counts(seconds):
    """Make the kept counts look `seconds` old."""
    from webapp.models import JobCounts
    from webapp.timeutil import utcnow

    JobCounts.objects(id="all").update_one(set__counted_at=utcnow() - timedelta(seconds=seconds))


def marks_of_admins():
    from webapp.models import User

    return [user.all_jobs_mark or 0 for user in User.objects(role="admin")]


def test_the_admin_counts_are_kept_between_recounts_and_say_when_they_were_counted(app, client, api, monkeypatch):
    from webapp.services.monitoring import job_counts

    monkeypatch.setitem(app.config, "JOB_COUNTS_SECONDS", 5)
    admin = api.admin()
    add_jobs(2)
    first = client.get("/api/admin/jobs", headers=admin).json
    assert first["counts"]["PENDING"] == 2 and first["total"] == 2 and first["counted_at"]

    add_jobs(1)
    kept = client.get("/api/admin/jobs", headers=admin).json
    assert kept["counts"]["PENDING"] == 2 and kept["total"] == 2  # at most 5 s old: not counted again
    assert kept["counted_at"] == first["counted_at"]
    assert len(kept["items"]) == 3  # the rows themselves are live
    assert client.get("/api/admin/stats", headers=admin).json["counted_at"] == first["counted_at"]
    pages = PageClient(app.test_client())
    pages.login(client.get("/api/users/me", headers=admin).json["email"])
    assert "recounted every 5 s (last count at" in " ".join(pages.get("/admin").get_data(as_text=True).split())
    table = " ".join(pages.get("/admin/jobs").get_data(as_text=True).split())
    assert "the counts are recounted every 5 s" in table and '<span class="count">2</span>' in table

    # A consumer's maintenance step: nothing to do while fresh, a recount once due, which moves the admins' marks.
    assert job_counts.recount_if_due(5) is False
    before = marks_of_admins()
    age_counts(6)
    assert job_counts.recount_if_due(5) is True
    assert client.get("/api/admin/jobs", headers=admin).json["counts"]["PENDING"] == 3
    assert [mark - 1 for mark in marks_of_admins()] == before
    # Recounting what did not change leaves the marks (and so the admins' polls) alone.
    age_counts(6)
    assert job_counts.recount_if_due(5) is True
    assert [mark - 1 for mark in marks_of_admins()] == before

    # No consumer recounting (the counts are STALE_FACTOR times too old): the reader recounts itself.
    add_jobs(1, status="FAILED")
    age_counts(5 * job_counts.STALE_FACTOR + 1)
    fresh = client.get("/api/admin/jobs?status=FAILED", headers=admin).json
    assert fresh["counts"]["FAILED"] == 1 and fresh["total"] == 1 and fresh["counted_at"] != first["counted_at"]


def test_job_counts_seconds_0_counts_every_read(app, client, api, monkeypatch):
    monkeypatch.setitem(app.config, "JOB_COUNTS_SECONDS", 0)
    admin = api.admin()
    add_jobs(2)
    assert client.get("/api/admin/jobs", headers=admin).json["counts"]["PENDING"] == 2
    add_jobs(1)
    assert client.get("/api/admin/jobs", headers=admin).json["counts"]["PENDING"] == 3


def test_a_consumers_maintenance_thread_recounts(app, redis_client, tmp_path):
    from webapp.models import JobCounts

    add_jobs(4, status="CANCELLED")
    env = {**os.environ, "JOB_COUNTS_SECONDS": "1", "HEARTBEAT_SECONDS": "0.5"}  # the suite's settings, and these
    consumer = HueyConsumer(env, tmp_path / "consumer.log", workers=1, periodic=False).start()
    try:
        deadline = time.monotonic() + 20
        while (kept := JobCounts.objects(id="all").first()) is None or kept.counts.get("CANCELLED") != 4:
            assert time.monotonic() < deadline, f"no recount by the consumer:\n{consumer.log_tail()}"
            time.sleep(0.2)
        add_jobs(1, status="CANCELLED")
        while JobCounts.objects(id="all").first().counts.get("CANCELLED") != 5:
            assert time.monotonic() < deadline, f"no second recount:\n{consumer.log_tail()}"
            time.sleep(0.2)
    finally:
        consumer.stop()
