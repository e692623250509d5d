"""Housekeeping: finished jobs are deleted RETENTION_DAYS after their last change, a small batch at a time.

A job is deleted only when it is COMPLETED, FAILED or CANCELLED and its `updated_at` (the
last write to it: sent, given up, cancelled, closed) is more than RETENTION_DAYS days ago.
A PENDING, RUNNING or IN_DOUBT job is never deleted, however old, and neither is a job an
admin requeued meanwhile: the delete repeats both conditions, so a job that changed
between the read and the delete stays. Its history (`attempts_log`) goes with it, never
earlier. RETENTION_DAYS=0 keeps every job.

The periodic sweep calls `purge` (tasks/sweeper.py). Each batch reads at most BATCH ids per
final status, oldest first, on the (status, updated_at) index, then deletes those by
`_id: {$in}`; the sweep runs at most BATCHES_PER_SWEEP of them, so a backlog (the first run
on an old database) is worked off over several sweeps, and a sweep's cost never grows with
the number of jobs kept. The owners' change marks move on, so their open tables drop the rows.
"""

from datetime import timedelta

from webapp.models import Job
from webapp.models import JobStatus
from webapp.services import change_marks
from webapp.timeutil import utcnow

BATCH = 200
BATCHES_PER_SWEEP = 5


def cutoff(days, now=None):
    """Jobs last changed before this moment are past retention."""
    return (now or utcnow()) - timedelta(days=days)


def purge_batch(days, now=None, batch=BATCH):
    """Delete at most `batch` finished jobs of each final status past retention; returns how many were deleted."""
    if not days:
        return 0
    before = cutoff(days, now)
    collection = Job._get_collection()
    expired = []
    for status in JobStatus.FINAL:
        found = collection.find({"status": status, "updated_at": {"$lt": before}}, {"owner_id": 1},
                                sort=[("updated_at", 1)], limit=batch)
        expired.extend(found)
    if not expired:
        return 0
    deleted = collection.delete_many({"_id": {"$in": [job["_id"] for job in expired]},
                                      "status": {"$in": list(JobStatus.FINAL)}, "updated_at": {"$lt": before}})
    change_marks.bump({job["owner_id"] for job in expired})
    return deleted.deleted_count


def purge(days, now=None, batches=BATCHES_PER_SWEEP, batch=BATCH):
    """The sweep's share: up to `batches` batches, stopping at the first that finds nothing; how many were deleted."""
    total = 0
    for _ in range(batches):
        deleted = purge_batch(days, now, batch)
        if not deleted:
            break
        total += deleted
    return total
