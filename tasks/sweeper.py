"""The periodic safety net, run by every consumer that enqueues periodic tasks.

Safe to run in many processes at once: recovery is conditional on the lease
token and re-queueing a due job is harmless (the claim is atomic).
"""

import logging

from huey import crontab

from tasks.delivery import schedule_delivery
from tasks.queue import huey
from tasks.worker_app import worker_app
from webapp.services import accounts
from webapp.services import recovery
from webapp.services.delivery import DeliverySettings
from webapp.timeutil import utcnow

log = logging.getLogger(__name__)


def sweep_once(app):
    """Recover expired leases, queue due jobs nobody queued, purge old revocations."""
    settings = DeliverySettings.from_config(app.config)
    recovered = recovery.recover_expired_leases(settings)
    for job_id, status in recovered:
        log.warning("job %s: worker lease expired, now %s", job_id, status)
        if status == "PENDING":
            schedule_delivery(job_id, utcnow(), 0)
    due = recovery.due_unqueued_jobs()
    for job_id, due_at in due:
        schedule_delivery(job_id, due_at, 0)
    purged = accounts.purge_expired_revocations()
    if recovered or due or purged:
        log.info("sweep: %d recovered, %d re-queued, %d revocations purged", len(recovered), len(due), purged)
    return {"recovered": len(recovered), "requeued": len(due), "purged": purged}


@huey.periodic_task(crontab(minute="*"))
def sweep():
    """Every minute (and at consumer start): the sweep above."""
    app = worker_app()
    with app.app_context():
        sweep_once(app)
