"""End to end: a job created through the API arrives at a real SMTP server, on time, once."""

import time
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from tests.support.waiting import iso

pytestmark = pytest.mark.usefixtures("consumer")


def watch_statuses(client, headers, job_id, until, timeout=20):
    """Poll the API like a user would and return the distinct statuses seen, in order."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/users/jobs/{job_id}", headers=headers).json
        if not seen or seen[-1] != job["status"]:
            seen.append(job["status"])
        if job["status"] in until:
            return seen, job
        time.sleep(0.05)
    raise AssertionError(f"job never reached {until}; saw {seen}")


def test_email_goes_out_on_time_exactly_once(client, api, smtp):
    headers = api.user()
    # A slow DATA reply keeps the job RUNNING long enough to be seen doing so.
    smtp.stall_data(1.0)
    send_at = datetime.now(UTC) + timedelta(seconds=2)
    payload = {
        "to": ["one@example.com", "two@example.com"],
        "subject": "Quarterly <report> ünïcode",
        "body": "Line one\nLine two — with “quotes”",
        "send_at": iso(send_at),
    }
    job = client.post("/api/users/jobs", json=payload, headers=headers).json

    seen, final = watch_statuses(client, headers, job["id"], until={"COMPLETED", "FAILED"})

    assert seen == ["PENDING", "RUNNING", "COMPLETED"]
    [message] = smtp.wait_for(1)
    assert message.message_id == job["message_id"]
    assert message.message["Subject"] == payload["subject"]
    assert message.message.get_content().replace("\r\n", "\n").rstrip("\n") == payload["body"]
    assert sorted(message.rcpt_tos) == ["one@example.com", "two@example.com"]
    assert message.mail_from == "scheduler@mailjobs.test"
    # Not early (the server answers 1 s after DATA started), and not late by more than that plus slack
    # (the test below is the sharp one for lateness).
    lateness = message.received_at - send_at.timestamp()
    assert 0.9 <= lateness < 1.5, lateness
    assert final["attempts"] == 1 and final["sent_at"] is not None
    assert [a["outcome"] for a in final["attempts_log"]] == ["sent"]
    time.sleep(1.0)
    assert smtp.count_by_message_id()[job["message_id"]] == 1


def test_jobs_leave_on_the_dot_whatever_the_phase_of_the_schedulers_tick(client, api, smtp):
    """Huey's scheduler looks for due tasks once a second, at a phase of its own. The task is queued a
    second early and the worker waits out the rest, so that phase never shows: each job goes out a few
    hundredths of a second after its time. Without that lead a job waits for the next tick, up to a
    second; with four jobs due a quarter second apart, one of them would wait 0.75 s or more."""
    headers = api.user()
    base = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    dues = [base + timedelta(seconds=0.25 * k) for k in range(4)]
    created = [
        client.post(
            "/api/users/jobs",
            json={"to": f"tick{k}@example.com", "subject": f"tick {k}", "body": "b", "send_at": iso(due)},
            headers=headers,
        ).json
        for k, due in enumerate(dues)
    ]
    arrived = {message.message_id: message.received_at for message in smtp.wait_for(4, timeout=15)}
    lateness = [round(arrived[job["message_id"]] - due.timestamp(), 3) for job, due in zip(created, dues)]
    # Never early; late by the claim and the SMTP exchange only. 0.5 s leaves room for a loaded
    # machine and still catches a lost lead (a lateness of 0.75 s or more).
    assert all(0 <= late < 0.5 for late in lateness), lateness


def test_a_job_due_now_goes_out_within_a_second_or_two(client, api, smtp):
    headers = api.user()
    created = time.time()
    job = client.post(
        "/api/users/jobs", json={"to": "now@example.com", "subject": "now", "body": "b"}, headers=headers
    ).json
    [message] = smtp.wait_for(1, timeout=10)
    assert message.message_id == job["message_id"]
    assert message.received_at - created < 2.5


def test_cancelled_job_is_never_sent(client, api, smtp):
    headers = api.user()
    job = client.post(
        "/api/users/jobs",
        json={
            "to": "c@example.com",
            "subject": "no",
            "body": "b",
            "send_at": iso(datetime.now(UTC) + timedelta(seconds=2)),
        },
        headers=headers,
    ).json
    assert client.post(f"/api/users/jobs/{job['id']}/cancel", headers=headers).status_code == 200
    time.sleep(3.5)
    assert smtp.messages == []
    assert client.get(f"/api/users/jobs/{job['id']}", headers=headers).json["status"] == "CANCELLED"


def test_refused_recipient_fails_the_job_with_the_servers_words(client, api, smtp):
    headers = api.user()
    smtp.reject_recipients({"gone@example.com": "550 5.1.1 No such user"})
    job = client.post(
        "/api/users/jobs",
        json={"to": ["ok@example.com", "gone@example.com"], "subject": "s", "body": "b"},
        headers=headers,
    ).json
    _, final = watch_statuses(client, headers, job["id"], until={"FAILED", "COMPLETED"})
    assert final["status"] == "FAILED"
    assert final["last_error"].startswith("550")
    assert "gone@example.com" in final["last_error"]
    # Nobody got a partial copy.
    assert smtp.messages == []


def test_the_sweep_fails_a_job_left_pending_with_no_attempts_left_instead_of_running_it(app, client, api, smtp):
    """Older versions gave a job back PENDING after its last attempt (6 attempts of 5 were seen, one a
    minute), and stored no attempts_left: the next sweep queues it, and the consumer's claim gives it
    the counter and puts it FAILED without a 6th attempt."""
    from tasks.sweeper import sweep_once
    from webapp.models import Job
    from webapp.timeutil import utcnow

    headers = api.user()
    job = client.post(
        "/api/users/jobs",
        json={
            "to": "r@example.com",
            "subject": "s",
            "body": "b",
            "send_at": iso(datetime.now(UTC) + timedelta(days=1)),
        },
        headers=headers,
    ).json
    Job._get_collection().update_one(
        {"_id": Job.objects(message_id=job["message_id"]).first().id},
        {
            "$set": {
                "attempts": 5,
                "last_error": "UnicodeEncodeError: 'ascii' codec can't encode character",
                "next_attempt_at": utcnow() - timedelta(seconds=10),
            },
            "$unset": {"attempts_left": ""},
        },
    )

    assert sweep_once(app)["requeued"] == 1
    _, final = watch_statuses(client, headers, job["id"], until={"FAILED", "COMPLETED"})

    assert final["status"] == "FAILED" and final["attempts"] == 5 and final["attempts_log"] == []
    assert final["last_error"].startswith("no attempts left (5 of 5 used); last error: UnicodeEncodeError")
    assert smtp.messages == []
