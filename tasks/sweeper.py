"""The periodic safety net, scheduled by every consumer that enqueues periodic tasks.

Huey runs a periodic task in every consumer started without `-n`, at start
and then once a minute. The consumers take turns through the database (one
sweep per SWEEP_TURN_SECONDS however many there are), and even without the
turns running it everywhere is safe: recovery is conditional on the lease
token and re-queueing a due job is harmless (the claim is atomic).
"""

import logging
import os
import socket

from huey import crontab

from tasks.context import bound_app
from tasks.context import worker_id
from tasks.delivery import requeue_recovered
from tasks.delivery import schedule_delivery
from tasks.queue import huey
from tasks.schedules import materialize_due
from webapp.services import audit
from webapp.services.accounts import users
from webapp.services.delivery import expiry
from webapp.services.delivery import pause
from webapp.services.delivery import recovery
from webapp.services.delivery.rules import DeliverySettings
from webapp.services.jobs import retention
from webapp.timeutil import utcnow
from webapp.web import rate_limit_storage

log = logging.getLogger(__name__)

# Shorter than the minute between runs, so a late consumer clock does not skip a minute.
SWEEP_TURN_SECONDS = 45
# The expiry read (an index range on (status, expires_at), pushed down to SQLite on FerretDB) runs
# once per this many seconds across every sweeper (`flask sweep --every 0.5` pollers included). A job's expiry never waits on it to be enforced:
# the claim refuses an expired job; this only turns a PENDING one FAILED sooner.
EXPIRE_TURN_SECONDS = 30


def sweep_once(app, grace_seconds=5.0):
    """Recover expired leases, fail expired jobs, make schedules' occurrences, queue due jobs nobody
    queued, purge old revocations, counters, audit entries and finished jobs past RETENTION_DAYS.

    Each step is one query on an index that starts with what it looks for (expired leases, expired
    or due PENDING jobs, due schedules, expired records), so a sweep costs as much as the work it
    finds, not as the jobs stored (docs/queries.md).

    `grace_seconds`: how long a due PENDING job may wait in the queue before
    it counts as lost and is queued again; not while the queue holds at least
    as many tasks as there are such jobs (a backlog, not a loss: whatever was
    lost is queued by the first sweep once the backlog is down).
    """
    settings = DeliverySettings.from_config(app.config)
    recovered = recovery.recover_expired_leases(settings)
    requeue_recovered(recovered)
    expired = 0
    if recovery.take_sweep_turn("expire", f"{socket.gethostname()}:{os.getpid()}", EXPIRE_TURN_SECONDS):
        expired = expiry.expire_pending(utcnow())
    made = materialize_due(app)
    # While delivery is paused, due jobs wait in the database: resume queues them all at once.
    due = [] if pause.delivery_paused() else recovery.due_unqueued_jobs(grace_seconds)
    backlog = _queued_tasks()
    if due and backlog >= len(due):
        # The queue holds a task for at least as many jobs as are due: a backlog being worked
        # through (a burst), not lost tasks. Queueing them all again would only add a task per job.
        log.info("sweep: %d due jobs wait behind %d queued tasks; not queued again", len(due), backlog)
        due = []
    for job_id, due_at in due:
        schedule_delivery(job_id, due_at, 0, check_first=True)
    purged = users.purge_expired_revocations()
    # Housekeeping of the security records: ended rate-limit windows, audit entries past retention.
    counters = rate_limit_storage.purge_expired()
    audited = audit.purge_older_than(app.config["AUDIT_RETENTION_DAYS"])
    # Finished jobs past RETENTION_DAYS, a few small batches per sweep.
    deleted = retention.purge(app.config["RETENTION_DAYS"])
    if recovered or due or purged or expired or made:
        log.info(
            "sweep: %d recovered, %d re-queued, %d revocations purged, %d expired, %d occurrences made",
            len(recovered),
            len(due),
            purged,
            expired,
            made,
        )
    if counters or audited or deleted:
        log.info(
            "sweep: %d rate-limit counters, %d audit entries and %d finished jobs past retention purged",
            counters,
            audited,
            deleted,
        )
    return {
        "recovered": len(recovered),
        "expired": expired,
        "made": made,
        "requeued": len(due),
        "purged": purged,
        "deleted": deleted,
    }


def _queued_tasks():
    """How many tasks wait in the queue now (0 when it cannot be reached: then queue what is due)."""
    try:
        return huey.pending_count()
    except Exception:
        log.warning("sweep: could not count the queued tasks", exc_info=True)
        return 0


@huey.periodic_task(crontab(minute="*"))
def sweep():
    """Every minute (and at consumer start): the sweep above, if it is this consumer's turn."""
    app = bound_app()
    with app.app_context():
        if recovery.take_sweep_turn("sweep", worker_id(), SWEEP_TURN_SECONDS):
            sweep_once(app)
