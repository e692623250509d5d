"""Housekeeping: finished jobs are deleted RETENTION_DAYS after their last change, a small batch at a time.

A job is deleted only when it is COMPLETED, FAILED or CANCELLED and its `updated_at` (the
last write to it: sent, given up, cancelled, closed) is more than RETENTION_DAYS days ago.
A PENDING, RUNNING or IN_DOUBT job is never deleted, however old, and neither is a job an
admin requeued meanwhile: the delete repeats both conditions, so a job that changed
between the read and the delete stays. Its history (`attempts_log`) goes with it, never
earlier. RETENTION_DAYS=0 keeps every job.

The periodic sweep calls `purge` (tasks/sweeper.py). A batch reads at most BATCH ids of each
final status, oldest first, on the (status, updated_at) index, and deletes those by
`_id: {$in}`; the sweep runs at most BATCHES_PER_SWEEP batches (1,500 jobs a minute, two
million a day), so a backlog (the first run on an old database) is worked off over several
sweeps, and a sweep's cost never grows with the number of jobs kept. The owners' change
marks move on, so their open tables drop the rows.
"""

from datetime import timedelta

from webapp.models import Job
from webapp.models import JobStatus
from webapp.services.jobs import change_marks
from webapp.timeutil import utcnow

# Small batches: FerretDB serialises writes, and deleting a job updates each of its indexes
# (about 0.35 ms per job), so a batch holds the write lock for about BATCH × 0.35 ms.
BATCH = 50
BATCHES_PER_SWEEP = 10


def cutoff(days, now=None):
    """Jobs last changed before this moment are past retention."""
    return (now or utcnow()) - timedelta(days=days)


def purge_batch(days, now=None, batch=BATCH):
    """Delete up to `batch` finished jobs of each final status past retention, one delete per status; how many."""
    if not days:
        return 0
    before = cutoff(days, now)
    collection = Job._get_collection()
    deleted = 0
    for status in JobStatus.FINAL:
        expired = list(
            collection.find(
                {"status": status, "updated_at": {"$lt": before}},
                {"owner_id": 1},
                sort=[("updated_at", 1)],
                limit=batch,
            )
        )
        if not expired:
            continue
        # Both conditions again: a job requeued (or otherwise changed) since the read stays.
        deleted += collection.delete_many(
            {"_id": {"$in": [job["_id"] for job in expired]}, "status": status, "updated_at": {"$lt": before}}
        ).deleted_count
        change_marks.bump({job["owner_id"] for job in expired})
    return deleted


def purge(days, now=None, batches=BATCHES_PER_SWEEP, batch=BATCH):
    """The sweep's share: up to `batches` batches, stopping at the first that finds nothing; how many were deleted."""
    total = 0
    for _ in range(batches):
        deleted = purge_batch(days, now, batch)
        if not deleted:
            break
        total += deleted
    return total
