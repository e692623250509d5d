"""The rules of a job's delivery, through the services, against the real database.

No consumers here: each test plays the workers and sweepers itself, which is
how the races can be staged on purpose. The end-to-end versions, with real
consumer processes being killed, are in test_faults.py.
"""

import random
import threading
import time
from datetime import timedelta

import pytest
from bson import ObjectId

from webapp.mail.mailer import PermanentSmtpError
from webapp.mail.mailer import TransientSmtpError
from webapp.mail.mailer import send_email
from webapp.models import Job
from webapp.models import JobStatus
from webapp.services.delivery import attempts
from webapp.services.delivery import recovery
from webapp.services.delivery.attempts import LeaseLost
from webapp.services.delivery.rules import DeliverySettings
from webapp.services.delivery.rules import backoff_delay
from webapp.services.delivery.rules import deliver
from webapp.services.jobs import actions
from webapp.services.validation import JobInput
from webapp.services.validation import parse
from webapp.timeutil import utcnow

SETTINGS = DeliverySettings(lease_seconds=30, retry_base_seconds=0.5, retry_cap_seconds=2)
HOLD = DeliverySettings(lease_seconds=30, in_doubt_policy="hold")


def new_job(owner_id=None, max_attempts=5):
    data = parse(JobInput, {"to": "reader@example.com", "subject": "s", "body": "b"})
    return actions.create_job(owner_id or ObjectId(), data, "scheduler@mailjobs.test", max_attempts)


def stored(job_id):
    return Job._get_collection().find_one({"_id": job_id})


def after_lease(job):
    """A moment just after `job`'s lease ran out, as a sweeper would see it."""
    return job["lease_expires_at"] + timedelta(seconds=1)


def run_together(count, target):
    """Start `count` threads at once on `target(i)` and wait for them all."""
    barrier = threading.Barrier(count)

    def run(i):
        barrier.wait()
        target(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_the_database_lets_exactly_one_concurrent_claim_win(app):
    claimed = [new_job() for _ in range(20)]
    wins = []

    def claim_all(i):
        for job in claimed:
            if attempts.claim(job.id, f"worker-{i}", 30)[0]:
                wins.append(job.id)

    run_together(12, claim_all)

    assert sorted(wins) == sorted(job.id for job in claimed), (
        "a job was claimed twice: is var/bin/ferretdb built with scripts/ferretdb-patches/01-serialize-writes.patch?"
    )
    for job in claimed:
        doc = stored(job.id)
        assert doc["attempts"] == 1 and len(doc["attempts_log"]) == 1


def test_a_stale_lease_can_neither_fail_renew_nor_send_the_job(app):
    job = new_job()
    stale = attempts.claim(job.id, "worker-a", 30)[0]
    later = after_lease(stale)
    assert recovery.recover_expired_leases(SETTINGS, now=later) == [(job.id, JobStatus.PENDING)]
    current = attempts.claim(job.id, "worker-b", 30, now=later)[0]

    assert attempts.mark_failed(stale, "451 late", None) is False
    assert attempts.mark_failed(stale, "451 late", utcnow()) is False
    assert attempts.mark_in_doubt(stale, "no reply") is False
    assert attempts.renew_leases([(stale, 30, False)]) == 0
    with pytest.raises(LeaseLost):
        attempts.enter_data_stage(stale, 30)
    attempts.release_claim(stale, "shutting down")

    doc = stored(job.id)
    assert doc["status"] == JobStatus.RUNNING and doc["lease_token"] == current["lease_token"]
    assert doc["lease_owner"] == "worker-b"
    assert attempts.mark_failed(current, "451 try later", utcnow()) is True
    assert stored(job.id)["status"] == JobStatus.PENDING


def test_data_cannot_start_on_a_lease_that_ran_out(app):
    job = new_job()
    claim = attempts.claim(job.id, "worker-a", 30)[0]
    # The worker stalled (a long GC pause, a frozen VM) until its lease was over.
    Job._get_collection().update_one({"_id": job.id}, {"$set": {"lease_expires_at": utcnow() - timedelta(seconds=1)}})
    with pytest.raises(LeaseLost):
        attempts.enter_data_stage(claim, 30)
    assert stored(job.id)["delivery_stage"] == "claimed"


def test_a_message_accepted_after_the_lease_ran_out_is_not_sent_again(app):
    job = new_job()
    slow = attempts.claim(job.id, "worker-a", 30)[0]
    attempts.enter_data_stage(slow, 30)
    # worker-a is stuck in DATA past its lease; the sweep (policy resend) hands the job on.
    later = after_lease(stored(job.id))
    assert recovery.recover_expired_leases(SETTINGS, now=later) == [(job.id, JobStatus.PENDING)]
    second = attempts.claim(job.id, "worker-b", 30, now=later)[0]

    assert attempts.mark_sent(slow) is True  # the SMTP server's 250 for worker-a arrives
    with pytest.raises(LeaseLost):
        attempts.enter_data_stage(second, 30)  # so worker-b does not send a second copy
    attempts.note_lease_lost(second)

    doc = stored(job.id)
    assert doc["status"] == JobStatus.COMPLETED and "lease_token" not in doc
    assert [entry["outcome"] for entry in doc["attempts_log"]] == ["sent", "lease_lost"]


def test_a_worker_whose_lease_was_taken_over_before_data_sends_nothing(app, smtp):
    """Under IN_DOUBT_POLICY=resend no write precedes DATA: the local fence must stop a worker that
    stalled until another took its job (its renewals found the lease gone, and its clock says the
    lease may have run out), or the recipient gets two copies."""
    job = new_job()
    settings = DeliverySettings(lease_seconds=3)
    mail = app.extensions["mail"]

    def stall_until_taken_over():
        # worker-a stalls after RCPT; its lease runs out, a sweep gives the job back, worker-b claims it.
        Job._get_collection().update_one(
            {"_id": job.id}, {"$set": {"lease_expires_at": utcnow() - timedelta(seconds=1)}}
        )
        assert recovery.recover_expired_leases(settings) == [(job.id, JobStatus.PENDING)]
        assert attempts.claim(job.id, "worker-b", 30)[0] is not None
        time.sleep(settings.lease_seconds / 3 + 0.5)  # a round of worker-a's lease renewals comes and goes

    def send(job, before_data, on_accepted):
        send_email(mail, job, 5, lambda: (stall_until_taken_over(), before_data()), on_accepted, 5)

    assert deliver(job.id, "worker-a", settings, send).outcome == "lease_lost"
    time.sleep(0.5)
    assert smtp.messages == []
    doc = stored(job.id)
    assert doc["status"] == JobStatus.RUNNING and doc["lease_owner"] == "worker-b"
    assert [entry["outcome"] for entry in doc["attempts_log"]] == ["lease_lost", "running"]


def test_concurrent_sweepers_recover_each_expired_lease_exactly_once(app):
    claims = [attempts.claim(new_job().id, "dead-worker", 30)[0] for _ in range(25)]
    later = max(after_lease(claim) for claim in claims)
    recovered = []
    run_together(8, lambda i: recovered.extend(recovery.recover_expired_leases(SETTINGS, now=later)))

    assert sorted(job_id for job_id, _ in recovered) == sorted(claim["_id"] for claim in claims)
    for claim in claims:
        doc = stored(claim["_id"])
        assert doc["status"] == JobStatus.PENDING and doc["attempts"] == 1
        assert [entry["outcome"] for entry in doc["attempts_log"]] == ["lease_expired"]


def test_only_one_consumer_takes_each_turn_of_the_periodic_sweep(app):
    name = f"sweep-{ObjectId()}"
    takers = []
    run_together(8, lambda i: recovery.take_sweep_turn(name, f"consumer-{i}", 45) and takers.append(i))
    assert len(takers) == 1
    assert recovery.take_sweep_turn(name, "late", 45) is False
    assert recovery.take_sweep_turn(name, "next-minute", 45, now=utcnow() + timedelta(seconds=46)) is True


class Bound:
    """A stand-in for `random` that always picks one end of the jitter range."""

    def __init__(self, end):
        self.end = end

    def uniform(self, low, high):
        return low if self.end == "low" else high


def test_backoff_doubles_from_the_base_is_capped_and_jittered_within_half_to_full():
    settings = DeliverySettings(retry_base_seconds=30, retry_cap_seconds=3600)
    ceilings = [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
    for attempt, ceiling in enumerate(ceilings, start=1):
        assert backoff_delay(attempt, settings, Bound("high")).total_seconds() == ceiling
        assert backoff_delay(attempt, settings, Bound("low")).total_seconds() == ceiling / 2
        for _ in range(50):
            assert ceiling / 2 <= backoff_delay(attempt, settings).total_seconds() <= ceiling
    delays = {backoff_delay(3, settings, random.Random(seed)).total_seconds() for seed in range(20)}
    assert len(delays) > 10  # jitter spreads workers that failed together


def failing_send(error, data_sent=False):
    def send(job, before_data, on_accepted):
        if data_sent:
            before_data()
        raise error

    return send


def test_transient_failures_retry_with_backoff_then_fail_after_max_attempts(app):
    job = new_job(max_attempts=3)
    outcomes = []
    for _ in range(3):
        result = deliver(job.id, "worker", SETTINGS, failing_send(TransientSmtpError(451, "4.3.0 Try later")))
        outcomes.append(result.outcome)
        doc = stored(job.id)
        if result.retry_at:
            assert doc["status"] == JobStatus.PENDING
            wait = (result.retry_at - utcnow()).total_seconds()
            assert 0 < wait <= SETTINGS.retry_cap_seconds
            Job._get_collection().update_one({"_id": job.id}, {"$set": {"next_attempt_at": utcnow()}})
    doc = stored(job.id)
    assert outcomes == ["retry", "retry", "failed"]
    assert doc["status"] == JobStatus.FAILED and doc["attempts"] == 3
    assert doc["last_error"] == "451 4.3.0 Try later"
    assert [entry["outcome"] for entry in doc["attempts_log"]] == ["retry", "retry", "failed"]


def test_a_permanent_failure_fails_at_once_with_the_servers_code(app):
    job = new_job()
    result = deliver(job.id, "worker", SETTINGS, failing_send(PermanentSmtpError(550, "5.7.1 Rejected")))
    doc = stored(job.id)
    assert result.outcome == "failed"
    assert doc["status"] == JobStatus.FAILED and doc["attempts"] == 1 and doc["last_error"] == "550 5.7.1 Rejected"


def test_no_reply_to_data_follows_the_in_doubt_policy(app):
    timeout = TransientSmtpError(None, "TimeoutError: timed out (no reply to DATA)", in_doubt=True)
    held, resent = new_job(), new_job()

    assert deliver(held.id, "worker", HOLD, failing_send(timeout, data_sent=True)).outcome == "in_doubt"
    assert deliver(resent.id, "worker", SETTINGS, failing_send(timeout, data_sent=True)).outcome == "retry"

    assert stored(held.id)["status"] == JobStatus.IN_DOUBT
    assert "in doubt" in stored(held.id)["last_error"]
    assert stored(resent.id)["status"] == JobStatus.PENDING


def test_the_mailer_tells_a_missing_reply_from_a_refusal(app, smtp):
    mail = app.extensions["mail"]
    job = new_job()
    accepted = []

    def send(timeout):
        with app.app_context():  # flask-mail builds messages with current_app
            send_email(mail, job, timeout, lambda: None, lambda: accepted.append(1))

    smtp.queue_data_responses(["451 4.3.0 Try later"])
    with pytest.raises(TransientSmtpError) as refused:
        send(5)
    assert refused.value.code == 451 and not refused.value.in_doubt

    smtp.stall_data(1.5)
    with pytest.raises(TransientSmtpError) as silent:
        send(0.5)
    assert silent.value.in_doubt and silent.value.code is None
    # The server took the message after all: exactly the doubt the flag reports.
    [message] = smtp.wait_for(1)
    assert message.message_id == job.message_id

    smtp.stall_data(0)
    send(5)
    assert accepted == [1]


def held_in_doubt(owner_id):
    """A job whose worker died while its data was going out, recovered under policy `hold`."""
    job = new_job(owner_id)
    claim = attempts.claim(job.id, "dead-worker", 30)[0]
    attempts.enter_data_stage(claim, 30)
    assert recovery.recover_expired_leases(HOLD, now=after_lease(stored(job.id))) == [(job.id, JobStatus.IN_DOUBT)]
    return job


def test_admin_closes_or_resends_a_job_held_in_doubt(client, api):
    admin = api.admin()
    owner = ObjectId()
    closed, resent = held_in_doubt(owner), held_in_doubt(owner)

    shown = client.get(f"/api/admin/jobs/{closed.id}", headers=admin).json
    assert shown["status"] == "IN_DOUBT" and "in doubt" in shown["last_error"]
    assert [a["outcome"] for a in shown["attempts_log"]] == ["in_doubt"]

    response = client.post(f"/api/admin/jobs/{closed.id}/close", headers=admin)
    assert response.status_code == 200 and response.json["status"] == "COMPLETED"
    assert client.post(f"/api/admin/jobs/{closed.id}/retry", headers=admin).status_code == 409

    response = client.post(f"/api/admin/jobs/{resent.id}/retry", headers=admin)
    assert response.status_code == 200
    assert response.json["status"] == "PENDING" and response.json["max_attempts"] == 1 + 5
    assert client.post(f"/api/admin/jobs/{resent.id}/close", headers=admin).status_code == 409


def test_admin_requeues_a_failed_job_and_its_user_sees_the_history(client, api):
    user, admin = api.user(), api.admin()
    job = client.post(
        "/api/users/jobs",
        json={
            "to": "r@example.com",
            "subject": "s",
            "body": "b",
            "send_at": (utcnow() + timedelta(days=365)).isoformat(),
        },
        headers=user,
    ).json
    job_id = ObjectId(job["id"])
    Job._get_collection().update_one({"_id": job_id}, {"$set": {"next_attempt_at": utcnow()}})
    deliver(job_id, "worker", SETTINGS, failing_send(PermanentSmtpError(550, "5.1.1 No such user")))

    assert client.post(f"/api/admin/jobs/{job['id']}/retry", headers=user).status_code == 403
    response = client.post(f"/api/admin/jobs/{job['id']}/retry", headers=admin)
    assert response.status_code == 200 and response.json["status"] == "PENDING"
    assert client.post(f"/api/admin/jobs/{job['id']}/retry", headers=admin).status_code == 409

    seen = client.get(f"/api/users/jobs/{job['id']}", headers=user).json
    # Queued again at once: a consumer running alongside (the suite's shared one) may already have it.
    assert seen["status"] in {"PENDING", "RUNNING", "COMPLETED"} and seen["max_attempts"] == 6
    attempt = seen["attempts_log"][0]
    assert attempt["outcome"] == "failed" and attempt["error"] == "550 5.1.1 No such user"
    assert attempt["worker"] == "worker" and attempt["started_at"] and attempt["finished_at"]


def broken_send(job, before_data, on_accepted):
    """A delivery that always fails with something that is not an SMTP error (the old non-ASCII bug)."""
    raise UnicodeEncodeError("ascii", "josé@example.com", 3, 4, "ordinal not in range(128)")


def test_any_exception_counts_as_an_attempt_and_the_job_fails_after_max_attempts(app, caplog):
    job = new_job(max_attempts=3)
    outcomes = []
    for _ in range(8):
        # What the lease checks and the periodic sweep do, with the backoff waited out.
        recovery.recover_expired_leases(SETTINGS, now=utcnow() + timedelta(hours=1))
        Job._get_collection().update_one(
            {"_id": job.id, "status": JobStatus.PENDING}, {"$set": {"next_attempt_at": utcnow()}}
        )
        for job_id, _ in recovery.due_unqueued_jobs(grace_seconds=0, now=utcnow() + timedelta(seconds=1)):
            if job_id == job.id:
                outcomes.append(deliver(job_id, "worker", SETTINGS, broken_send).outcome)

    doc = stored(job.id)
    assert outcomes == ["retry", "retry", "failed"]
    assert doc["status"] == JobStatus.FAILED and doc["attempts"] == doc["max_attempts"] == 3
    assert doc["last_error"] == (
        "unexpected error: UnicodeEncodeError: 'ascii' codec can't encode character "
        "'\\xe9' in position 3: ordinal not in range(128)"
    )
    assert [entry["outcome"] for entry in doc["attempts_log"]] == ["retry", "retry", "failed"]
    # One logged traceback per attempt, not one a minute forever.
    assert len([record for record in caplog.records if record.exc_info]) == 3


def test_a_pending_job_whose_attempts_are_used_up_is_failed_and_never_claimed(app):
    # PENDING with every attempt used (an older release_claim left 6 of 5): the claim's
    # attempts_left condition refuses it, and the job is put FAILED without a new attempt.
    job = new_job(max_attempts=5)
    Job._get_collection().update_one(
        {"_id": job.id}, {"$set": {"attempts": 5, "attempts_left": 0, "last_error": "KeyError: 'x'"}}
    )

    assert attempts.claim(job.id, "worker", 30)[0] is None
    assert deliver(job.id, "worker", SETTINGS, broken_send).outcome == "skipped"

    doc = stored(job.id)
    assert doc["status"] == JobStatus.FAILED and doc["attempts"] == 5 and doc["attempts_log"] == []
    assert doc["last_error"] == "no attempts left (5 of 5 used); last error: KeyError: 'x'"


def test_jobs_stored_before_attempts_left_existed_get_it_once_and_keep_their_limit(app):
    # Documents written by earlier versions have no attempts_left: the first claim adds it.
    used_up, halfway = new_job(max_attempts=5), new_job(max_attempts=5)
    for job, used in ((used_up, 5), (halfway, 2)):
        Job._get_collection().update_one({"_id": job.id}, {"$set": {"attempts": used}, "$unset": {"attempts_left": ""}})

    assert attempts.claim(used_up.id, "worker", 30)[0] is None
    doc = stored(used_up.id)
    assert doc["status"] == JobStatus.FAILED and doc["attempts"] == 5 and doc["attempts_left"] == 0

    wins = []
    run_together(8, lambda i: wins.append(attempts.claim(halfway.id, f"worker-{i}", 30)[0]))
    assert len([claim for claim in wins if claim]) == 1
    doc = stored(halfway.id)
    assert doc["status"] == JobStatus.RUNNING and doc["attempts"] == 3 and doc["attempts_left"] == 2


def test_a_claim_given_back_on_its_last_attempt_fails_the_job(app):
    last, not_last = new_job(max_attempts=1), new_job(max_attempts=2)
    for job in (last, not_last):
        with pytest.raises(KeyboardInterrupt):  # the worker is shutting down before DATA
            deliver(job.id, "worker", SETTINGS, failing_send(KeyboardInterrupt("shutdown")))

    assert stored(not_last.id)["status"] == JobStatus.PENDING
    doc = stored(last.id)
    assert doc["status"] == JobStatus.FAILED and doc["attempts"] == 1
    assert doc["last_error"] == "no attempts left (1 of 1 used); last error: KeyboardInterrupt: shutdown"
    assert [entry["outcome"] for entry in doc["attempts_log"]] == ["released"]
