"""Jobs per status over all jobs: counted at most every JOB_COUNTS_SECONDS, read by `_id` in between.

Counting every job per status is the one read whose cost grows with the jobs stored, even
from an index: each status is one index seek, then its entries are counted (about 0.2 ms
per 1,000 jobs on FerretDB: 18 ms at 100,000; MongoDB counts index keys the same way). The
admin table, `GET /api/admin/jobs`, the status page and /metrics show these counts, and
the admin table's poll must not pay for them every 2 s. So they are kept in one document
(`job_counts`, `_id: "all"`) with the time they were counted:

- each consumer's maintenance thread recounts when the document is older than
  JOB_COUNTS_SECONDS (default 5; two consumers at once only count twice);
- a reader recounts itself when the document is older than STALE_FACTOR times that (no
  consumer is running), and with JOB_COUNTS_SECONDS=0 every read counts (exact, the cost above);
- a recount that changes a figure moves the admins' change marks, so their tables refresh.

Counts are therefore at most JOB_COUNTS_SECONDS old while a consumer runs, and always say
when they were counted. A user's own counts are not kept here: they are counted live from
the (owner_id, status, ...) index, at the cost of that user's jobs only.
"""

import time
from dataclasses import dataclass

from webapp.models import JobCounts
from webapp.models import JobStatus
from webapp.models.job_counts import ALL_JOBS
from webapp.services.jobs import actions
from webapp.services.jobs import change_marks
from webapp.timeutil import as_utc
from webapp.timeutil import utcnow

# A reader recounts when the counts are this many times older than JOB_COUNTS_SECONDS.
STALE_FACTOR = 4


@dataclass(frozen=True)
class Counts:
    """Jobs per status (every status, zeros included) and when they were counted."""

    counts: dict
    counted_at: object

    def age_seconds(self, now=None):
        return max(0.0, ((now or utcnow()) - as_utc(self.counted_at)).total_seconds())


def _collection():
    return JobCounts._get_collection()


def recount(now=None):
    """Count now, store the counts, move the admins' marks if a figure changed; returns Counts."""
    start = time.perf_counter()
    counts = actions.status_counts()
    took_ms = round((time.perf_counter() - start) * 1000, 2)
    now = now or utcnow()
    before = _collection().find_one_and_update(
        {"_id": ALL_JOBS}, {"$set": {"counts": counts, "counted_at": now, "took_ms": took_ms}}, upsert=True
    )
    if before is None or before.get("counts") != counts:
        change_marks.bump_admins()
    return Counts(counts, now)


def read(max_age_seconds, now=None):
    """The counts, recounted first if they are missing or older than STALE_FACTOR × `max_age_seconds`.

    `max_age_seconds` 0 means count now (exact).
    """
    now = now or utcnow()
    if not max_age_seconds:
        return Counts(actions.status_counts(), now)
    doc = _collection().find_one({"_id": ALL_JOBS})
    if doc is None or doc.get("counted_at") is None:
        return recount(now)
    stored = Counts({**dict.fromkeys(JobStatus.ALL, 0), **doc.get("counts", {})}, as_utc(doc["counted_at"]))
    if stored.age_seconds(now) > STALE_FACTOR * max_age_seconds:
        return recount(now)
    return stored


def recount_if_due(max_age_seconds, now=None):
    """The maintenance thread's step: recount when the stored counts are older than `max_age_seconds`.

    True if it recounted. One read by `_id` when they are fresh.
    """
    if not max_age_seconds:
        return False
    now = now or utcnow()
    doc = _collection().find_one({"_id": ALL_JOBS}, {"counted_at": 1})
    if doc and doc.get("counted_at") and (now - as_utc(doc["counted_at"])).total_seconds() < max_age_seconds:
        return False
    recount(now)
    return True
