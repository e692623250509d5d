"""Delivery tasks: send a job when due, check a lease when it runs out.

Thin on purpose: the rules live in webapp.services.delivery / .recovery.
"""

import logging
import time
from datetime import timedelta

from bson import ObjectId
from pymongo.errors import ConnectionFailure

from tasks.queue import huey
from tasks.worker_app import worker_app
from tasks.worker_app import worker_id
from webapp.services import control
from webapp.services import delivery
from webapp.services import recovery
from webapp.services.mailer import send_email
from webapp.services.process_tally import TALLY
from webapp.services.process_tally import observed
from webapp.timeutil import as_utc
from webapp.timeutil import utcnow

log = logging.getLogger(__name__)

# How soon a task that could not reach the database tries again.
DATABASE_RETRY_SECONDS = 2.0


def schedule_delivery(job_id, due_at, lead_seconds=1.0):
    """Queue `deliver_job` for `due_at`; False if the queue is unreachable.

    Huey's scheduler wakes once a second, so the task is queued `lead_seconds`
    early and the worker waits out the rest: the email leaves on the dot, not
    up to a second late. If the queue is down the job is still safe in the
    database and the periodic sweep queues it later.
    """
    eta = as_utc(due_at) - timedelta(seconds=lead_seconds)
    try:
        if eta <= utcnow():
            deliver_job(str(job_id))
        else:
            deliver_job.schedule(args=(str(job_id),), eta=eta)
    except Exception:  # the broker is down: the sweep will queue it later
        log.warning("could not queue job %s; the periodic sweep will pick it up", job_id, exc_info=True)
        return False
    return True


def requeue_recovered(recovered):
    """Queue at once the jobs lease recovery put back to PENDING; log every recovery."""
    for job_id, status in recovered:
        log.warning("job %s: worker lease expired, now %s", job_id, status)
        if status == "PENDING":
            schedule_delivery(job_id, utcnow(), 0)


def schedule_lease_check(job_id, expires_at):
    """Look at the job again just after its lease would run out (fast recovery)."""
    try:
        check_lease.schedule(args=(str(job_id),), eta=as_utc(expires_at) + timedelta(seconds=0.5))
    except Exception:
        log.warning("could not queue the lease check for job %s; the sweep covers it", job_id, exc_info=True)


def retry_later(task, job_id, exc):
    """The database was unreachable: run `task` for the job again shortly."""
    log.warning("%s for job %s: database unreachable (%s); retrying in %.0f s",
                task.name, job_id, exc, DATABASE_RETRY_SECONDS)
    try:
        task.schedule(args=(str(job_id),), delay=DATABASE_RETRY_SECONDS)
    except Exception:
        log.warning("could not queue the retry for job %s; the sweep covers it", job_id, exc_info=True)


def _settings(app):
    return delivery.DeliverySettings.from_config(app.config)


def _wait_until(moment, limit_seconds):
    """Sleep until `moment` if it is at most `limit_seconds` away; False if further."""
    remaining = (as_utc(moment) - utcnow()).total_seconds()
    if remaining > limit_seconds:
        return False
    if remaining > 0:
        time.sleep(remaining)
    return True


@huey.task()
def deliver_job(job_id):
    """Send one job if it is due and nobody else has it."""
    app = worker_app()
    with app.app_context():
        oid = ObjectId(job_id)
        try:
            due = recovery.next_attempt_of(oid)
        except ConnectionFailure as exc:
            retry_later(deliver_job, oid, exc)
            return
        if due is None:
            log.info("job %s: not pending, nothing to do", oid)  # sent, cancelled, or taken by another task
            return
        lead = app.config["SCHEDULE_LEAD_SECONDS"]
        if not _wait_until(due, lead + 0.5):
            schedule_delivery(oid, due, lead)  # rescheduled meanwhile: come back later
            return
        try:
            if control.delivery_paused():  # the job stays PENDING; resume queues it again
                log.info("job %s: delivery is paused, not sending", oid)
                return
        except ConnectionFailure as exc:
            retry_later(deliver_job, oid, exc)
            return
        settings = _settings(app)
        mail, timeout = app.extensions["mail"], app.config["MAIL_TIMEOUT"]
        try:
            result = delivery.deliver(
                oid,
                worker_id(),
                settings,
                # observed: the heartbeat lists the job in flight, the tally sees the 250 and SMTP errors.
                send=observed(lambda job, before_data, on_accepted:
                              send_email(mail, job, timeout, before_data, on_accepted)),
                on_claimed=lambda job: schedule_lease_check(job["_id"], job["lease_expires_at"]),
            )
        except ConnectionFailure as exc:
            # The claim may have been made without us hearing of it, or made and not released:
            # look at the job once such a lease would be over, and try again meanwhile.
            schedule_lease_check(oid, utcnow() + timedelta(seconds=settings.lease_seconds))
            retry_later(deliver_job, oid, exc)
            return
        log.info("job %s: %s", oid, result.outcome)
        TALLY.record_result(result.outcome)
        if result.retry_at is not None:
            schedule_delivery(oid, result.retry_at, lead)


@huey.task()
def check_lease(job_id):
    """Recover the job if its worker died holding it; look again later if the lease was renewed."""
    app = worker_app()
    with app.app_context():
        oid = ObjectId(job_id)
        try:
            requeue_recovered(recovery.recover_expired_leases(_settings(app), job_id=oid))
            expires_at = recovery.lease_expiry(oid)
        except ConnectionFailure as exc:
            retry_later(check_lease, oid, exc)
            return
        if expires_at is not None:
            schedule_lease_check(oid, expires_at)
