"""The figures the status page, `GET /api/admin/stats`, /api/health and /metrics show, one query each.

- counts per status: the counts webapp.services.monitoring.job_counts keeps (a read by `_id`, recounted at
  most every JOB_COUNTS_SECONDS from the status index), with when they were counted;
- overdue: PENDING jobs more than OVERDUE_SECONDS past `next_attempt_at` (their
  effective send time): a count and the oldest, both on the (status, next_attempt_at) index;
- rates and lateness: two hour documents and thirty day documents by `_id`
  (webapp.services.monitoring.delivery_stats), written by the consumers once per heartbeat;
- workers: the heartbeat collection (one document per consumer process);
- queue: Huey's pending and scheduled counts (LLEN / ZCARD on Redis);
- paused: the control document, by `_id`.

On MongoDB and on the embedded FerretDB (patches 03/04) every one of these is answered from
an index or by `_id`; the overdue count reads the overdue jobs (to leave held ones out), so it
costs as much as the backlog, not as the jobs stored.
"""

from dataclasses import dataclass
from datetime import timedelta

from webapp.models import Job
from webapp.models import JobStatus
from webapp.services.delivery import pause
from webapp.services.monitoring import delivery_stats
from webapp.services.monitoring import heartbeats
from webapp.services.monitoring import job_counts
from webapp.timeutil import as_utc
from webapp.timeutil import isoformat_z
from webapp.timeutil import utcnow


def overdue(now, overdue_seconds):
    """{count, oldest_seconds}: PENDING jobs due more than `overdue_seconds` ago, and how late the oldest is.

    Held jobs (their owner is disabled) wait on purpose: they are not late.
    """
    query = {
        "status": JobStatus.PENDING,
        "next_attempt_at": {"$lt": now - timedelta(seconds=overdue_seconds)},
        "held": {"$exists": False},
    }
    collection = Job._get_collection()
    count = collection.count_documents(query)
    oldest = None
    if count:
        first = next(collection.find(query, {"next_attempt_at": 1}).sort("next_attempt_at", 1).limit(1), None)
        if first is not None:
            oldest = round((now - as_utc(first["next_attempt_at"])).total_seconds(), 1)
    return {"count": count, "oldest_seconds": oldest}


@dataclass
class Stats:
    """Everything the status page shows, read once per request."""

    now: object
    counts: dict
    counted_at: object
    overdue: dict
    per_minute: list
    per_day: list
    lateness: dict
    workers: list
    queue: dict
    pause: dict
    smtp: dict
    overdue_seconds: float

    @property
    def workers_alive(self):
        return sum(1 for record in self.workers if record["alive"])

    def to_json(self):
        """The `GET /api/admin/stats` document."""
        return {
            "counts": self.counts,
            "counted_at": isoformat_z(self.counted_at),
            "overdue": self.overdue,
            "rates": {"per_minute": self.per_minute, "per_day": self.per_day},
            "lateness": self.lateness,
            "workers": [heartbeats.worker_to_json(record, self.now) for record in self.workers],
            "queue": self.queue,
            "paused": self.pause["paused"],
            "smtp": self.smtp,
        }


def collect(overdue_seconds, queue, counts_max_age=0, now=None):
    """Read every figure once (see the module doc for what each costs); counts at most `counts_max_age` s old.

    `queue` is the broker's depth (tasks.queue.queue_depth), passed in so the domain never imports the queue.
    """
    now = now or utcnow()
    records = heartbeats.list_workers(now)
    per_minute, lateness = delivery_stats.last_hour(now)
    kept = job_counts.read(counts_max_age, now)
    return Stats(
        now=now,
        counts=kept.counts,
        counted_at=kept.counted_at,
        overdue=overdue(now, overdue_seconds),
        per_minute=per_minute,
        per_day=delivery_stats.last_days(now),
        lateness=lateness,
        workers=records,
        queue=queue,
        pause=pause.pause_state(records),
        smtp=heartbeats.newest_smtp_state(records),
        overdue_seconds=overdue_seconds,
    )


def health():
    """{workers_alive, paused} for /api/health: two small reads."""
    records = heartbeats.list_workers()
    return {"workers_alive": sum(1 for record in records if record["alive"]), "paused": pause.read_pause() is not None}
