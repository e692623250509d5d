"""The delivery task: send a job when due.

Thin on purpose: the rules live in webapp.services.delivery.rules. A job whose
worker died is recovered by every consumer's maintenance thread
(tasks/maintenance.py) and by the periodic sweep (tasks/sweeper.py), not by a
task per job.
"""

import logging
import time
from datetime import timedelta

from bson import ObjectId
from pymongo.errors import ConnectionFailure

from tasks.context import bound_app
from tasks.context import worker_id
from tasks.queue import huey
from webapp.mail.mailer import send_email
from webapp.services.delivery import pause
from webapp.services.delivery import recovery
from webapp.services.delivery import rules
from webapp.services.delivery.rules import DeliveryOutcome
from webapp.services.monitoring.tally import TALLY
from webapp.services.monitoring.tally import observed
from webapp.timeutil import as_utc
from webapp.timeutil import utcnow

log = logging.getLogger(__name__)

# How soon a task that could not reach the database tries again.
DATABASE_RETRY_SECONDS = 2.0


def schedule_delivery(job_id, due_at, lead_seconds=1.0, check_first=False):
    """Queue `deliver_job` for `due_at`; False if the queue is unreachable.

    Huey's scheduler wakes once a second, so the task is queued `lead_seconds`
    early and the worker waits out the rest: the email leaves on the dot, not
    up to a second late. The task carries `due_at`, so the worker claims the
    job without reading it first; with `check_first` (the sweep's tasks, most
    of them for jobs already queued) it carries none, and the worker reads the
    job before claiming. If the queue is down the job is still safe in the
    database and the periodic sweep queues it later.
    """
    due_at = as_utc(due_at)
    eta = due_at - timedelta(seconds=lead_seconds)
    args = (str(job_id), None if check_first else due_at)
    try:
        if eta <= utcnow():
            deliver_job(*args)
        else:
            # Straight into Huey's schedule, where a consumer would move it from the queue anyway:
            # two queue operations fewer per job (a Redis LPUSH and BRPOP, or two SQLite commits).
            huey.add_schedule(deliver_job.s(*args, eta=eta))
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


def retry_later(task, job_id, due_at, exc):
    """The database was unreachable: run `task` for the job again shortly."""
    log.warning(
        "%s for job %s: database unreachable (%s); retrying in %.0f s", task.name, job_id, exc, DATABASE_RETRY_SECONDS
    )
    try:
        task.schedule(args=(str(job_id), due_at), delay=DATABASE_RETRY_SECONDS)
    except Exception:
        log.warning("could not queue the retry for job %s; the sweep covers it", job_id, exc_info=True)


def _wait_until(moment, limit_seconds):
    """Sleep until `moment` if it is at most `limit_seconds` away; False if further."""
    remaining = (as_utc(moment) - utcnow()).total_seconds()
    if remaining > limit_seconds:
        return False
    if remaining > 0:
        time.sleep(remaining)
    return True


@huey.task()
def deliver_job(job_id, due_at=None):
    """Send one job at `due_at` if nobody else has it.

    Without `due_at` (a task the sweep queued, or one queued by an earlier
    version) the job is read first: if it is no longer PENDING, that is all.
    """
    app = bound_app()
    with app.app_context():
        oid = ObjectId(job_id)
        lead = app.config["SCHEDULE_LEAD_SECONDS"]
        if due_at is None:
            try:
                due = recovery.next_attempt_of(oid)
            except ConnectionFailure as exc:
                retry_later(deliver_job, oid, due_at, exc)
                return
            if due is None:
                log.info("job %s: not pending, nothing to do", oid)  # sent, cancelled, or taken by another task
                return
        else:
            due = due_at
        if not _wait_until(due, lead + 0.5):
            schedule_delivery(oid, due, lead, check_first=due_at is None)  # queued too early: come back later
            return
        try:
            if pause.delivery_paused():  # the job stays PENDING; resume queues it again
                log.info("job %s: delivery is paused, not sending", oid)
                return
        except ConnectionFailure as exc:
            retry_later(deliver_job, oid, due_at, exc)
            return
        settings = rules.DeliverySettings.from_config(app.config)
        mail, timeout, idle = app.extensions["mail"], app.config["MAIL_TIMEOUT"], app.config["MAIL_IDLE_SECONDS"]
        try:
            result = rules.deliver(
                oid,
                worker_id(),
                settings,
                # observed: the heartbeat lists the job in flight, the tally sees the 250 and SMTP errors.
                send=observed(
                    lambda job, before_data, on_accepted: send_email(mail, job, timeout, before_data, on_accepted, idle)
                ),
            )
        except ConnectionFailure as exc:
            # The claim may have been made without us hearing of it: then its lease runs out and
            # recovery (every consumer's maintenance thread) gives the job back. Try again meanwhile.
            retry_later(deliver_job, oid, due_at, exc)
            return
        if result.outcome == DeliveryOutcome.SKIPPED:
            log.info(
                "job %s: skipped (not pending: sent, cancelled or taken by another task)%s",
                oid,
                f"; due at {result.retry_at.isoformat()}" if result.retry_at else "",
            )
        else:
            log.info("job %s: %s", oid, result.outcome)
        TALLY.record_result(result.outcome)
        if result.retry_at is not None:
            schedule_delivery(oid, result.retry_at, lead)
