"""Scheduling end to end: the real consumer, the real SMTP server, messages counted by Message-ID.

Reschedule (later and earlier: sent once, at the new time), expiry during an SMTP outage and on a
claim, the sweep failing what expired while waiting, and a retry that would land outside the
job's window (through the delivery service, with a backoff long enough to cross the window's end).
"""

import time
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
from bson import ObjectId

from tests.support.waiting import iso
from tests.support.waiting import wait_for_status
from webapp.mail.mailer import send_email
from webapp.models import Job
from webapp.models import SweepTurn
from webapp.services.delivery.rules import DeliverySettings
from webapp.services.delivery.rules import deliver
from webapp.timeutil import utcnow

pytestmark = pytest.mark.usefixtures("consumer")


def fetch(client, headers, job_id):
    return client.get(f"/api/users/jobs/{job_id}", headers=headers).json


def test_a_job_moved_later_is_not_sent_at_its_old_time_and_goes_once_at_the_new_one(client, api, smtp):
    headers = api.user()
    start = datetime.now(UTC)
    job = client.post(
        "/api/users/jobs",
        headers=headers,
        json={
            "to": "later@example.com",
            "subject": "Moved later",
            "body": "b",
            "send_at": iso(start + timedelta(seconds=3)),
        },
    ).json
    new_time = start + timedelta(seconds=7)
    moved = client.patch(f"/api/users/jobs/{job['id']}", json={"send_at": iso(new_time)}, headers=headers)
    assert moved.status_code == 200
    assert abs(datetime.fromisoformat(moved.json["effective_send_at"]) - new_time) < timedelta(milliseconds=1)
    # The task queued for +3 s fires and finds the job not due: nothing at the old time.
    time.sleep(max(0, (start + timedelta(seconds=5.5) - datetime.now(UTC)).total_seconds()))
    assert smtp.messages == [] and fetch(client, headers, job["id"])["status"] == "PENDING"
    [message] = smtp.wait_for(1, timeout=15)
    assert message.message_id == job["message_id"]
    assert message.received_at >= new_time.timestamp() - 0.05  # not early: at the new time
    time.sleep(1.5)
    assert smtp.count_by_message_id()[job["message_id"]] == 1


def test_a_job_moved_earlier_goes_at_the_new_time_and_its_old_task_sends_nothing(client, api, smtp):
    headers = api.user()
    start = datetime.now(UTC)
    old_time = start + timedelta(seconds=8)
    job = client.post(
        "/api/users/jobs",
        headers=headers,
        json={"to": "earlier@example.com", "subject": "Moved earlier", "body": "b", "send_at": iso(old_time)},
    ).json
    new_time = start + timedelta(seconds=2)
    moved = client.patch(f"/api/users/jobs/{job['id']}", json={"send_at": iso(new_time)}, headers=headers)
    assert moved.status_code == 200
    [message] = smtp.wait_for(1, timeout=10)
    assert message.message_id == job["message_id"]
    assert new_time.timestamp() - 0.05 <= message.received_at < old_time.timestamp() - 3
    # Past the old time: the task queued for it found the job sent and did nothing.
    time.sleep(max(0, (old_time + timedelta(seconds=2) - datetime.now(UTC)).total_seconds()))
    assert smtp.count_by_message_id()[job["message_id"]] == 1
    assert fetch(client, headers, job["id"])["attempts"] == 1


def test_a_job_that_cannot_get_through_before_its_expiry_fails_as_expired_and_is_never_sent(client, api, smtp):
    headers = api.user()
    smtp.queue_data_responses(["421 4.3.2 Service shutting down"] * 40)  # an outage: every DATA refused
    now = datetime.now(UTC)
    job = client.post(
        "/api/users/jobs",
        headers=headers,
        json={
            "to": "expiring@example.com",
            "subject": "Only useful today",
            "body": "b",
            "expires_at": iso(now + timedelta(seconds=2)),
        },
    ).json
    wait_for_status(job["id"], {"FAILED", "COMPLETED"})
    final = fetch(client, headers, job["id"])
    assert final["status"] == "FAILED"
    assert final["last_error"].startswith("expired"), final["last_error"]
    assert "421 4.3.2" in final["last_error"]  # and it says what stood in the way
    assert 1 <= final["attempts"] < final["max_attempts"]  # given up for the expiry, not the attempts
    smtp.reset_faults()  # the server is back: the expired job still never goes out
    time.sleep(2)
    assert smtp.messages == []


def test_a_claimed_job_past_its_expiry_is_failed_without_sending(app, client, api, smtp):
    from tasks.delivery import schedule_delivery

    headers = api.user()
    job = client.post(
        "/api/users/jobs",
        headers=headers,
        json={
            "to": "stale@example.com",
            "subject": "Stale",
            "body": "b",
            "send_at": iso(datetime.now(UTC) + timedelta(hours=1)),
            "expires_at": iso(datetime.now(UTC) + timedelta(hours=2)),
        },
    ).json
    # As if the consumers had been down past its expiry: due long ago, expired a minute ago.
    Job._get_collection().update_one(
        {"message_id": job["message_id"]},
        {"$set": {"next_attempt_at": utcnow() - timedelta(minutes=5), "expires_at": utcnow() - timedelta(minutes=1)}},
    )
    schedule_delivery(Job.objects(message_id=job["message_id"]).first().id, utcnow(), 0)
    wait_for_status(job["id"], {"FAILED", "COMPLETED"})
    final = fetch(client, headers, job["id"])
    assert final["status"] == "FAILED" and final["last_error"].startswith("expired: not handed to the SMTP server")
    assert [attempt["outcome"] for attempt in final["attempts_log"]] == ["failed"]
    time.sleep(1)
    assert smtp.messages == []


def test_the_sweep_fails_pending_jobs_whose_expiry_passed_while_they_waited(app, client, api, smtp):
    from tasks.sweeper import sweep_once

    headers = api.user()
    waiting = client.post(
        "/api/users/jobs",
        headers=headers,
        json={
            "to": "w@example.com",
            "subject": "Waiting",
            "body": "b",
            "send_at": iso(datetime.now(UTC) + timedelta(days=1)),
            "expires_at": iso(datetime.now(UTC) + timedelta(days=2)),
        },
    ).json
    fine = client.post(
        "/api/users/jobs",
        headers=headers,
        json={
            "to": "f@example.com",
            "subject": "Fine",
            "body": "b",
            "send_at": iso(datetime.now(UTC) + timedelta(days=1)),
            "expires_at": iso(datetime.now(UTC) + timedelta(days=2)),
        },
    ).json
    Job._get_collection().update_one(
        {"message_id": waiting["message_id"]}, {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}}
    )
    SweepTurn.objects(name="expire").delete()  # its turn (once per 30 s across sweepers) is free
    assert sweep_once(app)["expired"] == 1
    expired = fetch(client, headers, waiting["id"])
    assert expired["status"] == "FAILED" and expired["last_error"].startswith("expired")
    assert expired["attempts"] == 0
    assert fetch(client, headers, fine["id"])["status"] == "PENDING"


def test_a_retry_that_would_land_outside_the_window_waits_for_the_next_opening(app, smtp):
    """The window is open for this minute (to the end of the day at 23:59, 2 minutes at most); the
    backoff (2 to 4 minutes) ends after it closes, so the retry is at the same time tomorrow."""
    from webapp.services.jobs import actions
    from webapp.services.jobs import job_timing
    from webapp.services.validation import JobInput
    from webapp.services.validation import parse

    now = utcnow()
    opens = now.replace(second=0, microsecond=0)
    closes = opens + timedelta(minutes=1)
    window = {
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "start": opens.strftime("%H:%M"),
        "end": closes.strftime("%H:%M"),
    }
    data = parse(
        JobInput,
        {"to": "window@example.com", "subject": "In hours", "body": "b", "timezone": "UTC", "windows": [window]},
    )
    job = actions.create_job(
        ObjectId(), data, "scheduler@mailjobs.test", 5, timing=job_timing.resolve_new(data, None, now)
    )
    # Claimed by this test as a worker would, with a backoff of 2 to 4 minutes.
    settings = DeliverySettings(lease_seconds=30, retry_base_seconds=240, retry_cap_seconds=240)
    mail, timeout = app.extensions["mail"], 5
    smtp.queue_data_responses(["451 4.3.0 Try again later"])
    with app.app_context():
        result = deliver(
            job.id,
            "test-worker",
            settings,
            lambda claimed, before_data, on_accepted: send_email(mail, claimed, timeout, before_data, on_accepted),
        )
    assert result.outcome == "retry"
    stored = Job._get_collection().find_one({"_id": job.id})
    assert stored["status"] == "PENDING" and stored["attempts"] == 1
    assert stored["next_attempt_at"].replace(tzinfo=UTC) == opens + timedelta(days=1)
    assert smtp.messages == []


def test_a_job_given_back_by_lease_recovery_waits_for_the_next_opening_of_its_window(app):
    """Its worker died inside the window and the lease ran out after the window closed: recovery
    puts it PENDING for the same minute tomorrow (it reads the job's zone and windows), and the
    task queued at once for it (tasks.delivery.requeue_recovered) cannot claim it before then."""
    from webapp.services.delivery import attempts
    from webapp.services.delivery import recovery
    from webapp.services.jobs import actions
    from webapp.services.jobs import job_timing
    from webapp.services.validation import JobInput
    from webapp.services.validation import parse

    now = utcnow()
    opens = now.replace(second=0, microsecond=0)
    window = {
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "start": opens.strftime("%H:%M"),
        "end": (opens + timedelta(minutes=1)).strftime("%H:%M"),
    }
    data = parse(
        JobInput,
        {"to": "recovered@example.com", "subject": "In hours", "body": "b", "timezone": "UTC", "windows": [window]},
    )
    job = actions.create_job(
        ObjectId(), data, "scheduler@mailjobs.test", 5, timing=job_timing.resolve_new(data, None, now)
    )
    with app.app_context():
        assert attempts.claim(job.id, "worker-that-dies", 30)[0] is not None
    later = opens + timedelta(minutes=5)  # the lease ran out, and the window is closed
    assert recovery.recover_expired_leases(DeliverySettings(lease_seconds=30), now=later) == [(job.id, "PENDING")]
    stored = Job._get_collection().find_one({"_id": job.id})
    assert stored["status"] == "PENDING" and stored["next_attempt_at"].replace(tzinfo=UTC) == opens + timedelta(days=1)
    assert attempts.claim(job.id, "worker-b", 30, now=later) == (None, opens + timedelta(days=1))


def _job_with(data, now):
    from webapp.services.jobs import actions
    from webapp.services.jobs import job_timing
    from webapp.services.validation import JobInput
    from webapp.services.validation import parse

    parsed = parse(JobInput, {"subject": "Needs the server", "body": "b", "timezone": "UTC", **data})
    return actions.create_job(
        ObjectId(), parsed, "scheduler@mailjobs.test", 5, timing=job_timing.resolve_new(parsed, None, now)
    )


def test_while_the_smtp_server_is_down_a_wait_keeps_to_the_window_and_the_expiry_still_fails_the_job(app, smtp):
    """A refused connection uses no attempt and the job waits (tests/delivery/test_faults.py); a job with
    windows waits for their next opening (the wait, 2 to 4 minutes, ends after this minute's
    window closes: tomorrow), and a job whose next try would come after its expiry is FAILED as
    expired instead of waiting on."""
    now = utcnow()
    opens = now.replace(second=0, microsecond=0)
    window = {
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "start": opens.strftime("%H:%M"),
        "end": (opens + timedelta(minutes=1)).strftime("%H:%M"),
    }
    in_hours = _job_with({"to": "window@example.com", "windows": [window]}, now)
    expiring = _job_with({"to": "expiring@example.com", "expires_at": iso(now + timedelta(seconds=60))}, now)
    settings = DeliverySettings(lease_seconds=30, retry_base_seconds=240, retry_cap_seconds=240)
    mail = app.extensions["mail"]
    smtp.stop()
    try:
        with app.app_context():
            results = [
                deliver(
                    job.id,
                    "test-worker",
                    settings,
                    lambda claimed, before_data, on_accepted: send_email(mail, claimed, 5, before_data, on_accepted),
                )
                for job in (in_hours, expiring)
            ]
    finally:
        smtp.start()
    assert [result.outcome for result in results] == ["waiting", "failed"]
    waiting = Job._get_collection().find_one({"_id": in_hours.id})
    assert waiting["status"] == "PENDING" and waiting["attempts"] == 0
    assert waiting["last_error"].startswith("connection: ")
    assert waiting["next_attempt_at"].replace(tzinfo=UTC) == opens + timedelta(days=1)
    failed = Job._get_collection().find_one({"_id": expiring.id})
    assert failed["status"] == "FAILED" and failed["last_error"].startswith("expired: the next attempt")
    assert "connection: " in failed["last_error"]
    assert smtp.messages == []
