"""Expiry: a job that cannot be handed to the SMTP server before its `expires_at` fails instead.

Three checks, each where the information already is, so none adds a database round trip to a
delivery: right after a claim (the claimed document carries `expires_at`), when a failed
attempt plans its retry (a retry that would start at or after the expiry, once its windows
are applied, fails at once), and in the periodic sweep (PENDING jobs whose expiry has passed,
on the (status, expires_at) index). Every such job is FAILED with `last_error` starting
"expired", and is never sent.
"""

import logging

from webapp.models import Job
from webapp.models import JobStatus
from webapp.services.jobs import change_marks
from webapp.services.scheduling import timing
from webapp.timeutil import as_utc
from webapp.timeutil import isoformat_z

log = logging.getLogger(__name__)

EXPIRED = "expired"


def expired_error(job, now):
    """The last_error of a claimed job (a raw document) that is past its expiry; None if it is not."""
    expires_at = job.get("expires_at")
    if expires_at is None or as_utc(expires_at) > now:
        return None
    previous = job.get("last_error")
    text = f"{EXPIRED}: not handed to the SMTP server before {isoformat_z(expires_at)} (expires_at); not sent"
    return f"{text}; last error: {previous}" if previous else text


def retry_time(job, candidate):
    """`candidate` pushed to the next opening of the job's windows (a raw document's)."""
    try:
        windows = timing.windows_from(job.get("windows"))
    except ValueError:  # a stored window no version of the API accepts: retry as if there were none
        log.warning("job %s: unreadable windows %r; retrying without them", job["_id"], job.get("windows"))
        windows = ()
    return timing.next_opening(candidate, windows, timing.zone_or_utc(job.get("timezone")))


def plan_retry(job, candidate, error):
    """When a failed attempt's job (a raw document) may be tried again: `candidate` pushed to the
    next opening of its windows. Returns (retry_at, None), or (None, last_error) when that falls
    at or after its expiry."""
    retry_at = retry_time(job, candidate)
    expires_at = job.get("expires_at")
    if expires_at is not None and retry_at >= as_utc(expires_at):
        return None, (
            f"{EXPIRED}: the next attempt could start at {isoformat_z(retry_at)} at the earliest, not before "
            f"{isoformat_z(expires_at)} (expires_at); last error: {error}"
        )
    return retry_at, None


def expire_pending(now, limit=1000):
    """FAILED for PENDING jobs whose expiry has passed (the sweep; the rest at the next one); how many.

    Read first, then write only what was found: on FerretDB every write command holds the
    server's write lock for its whole scan (scripts/ferretdb-patches/01), and an update_many
    that matches nothing, run by every sweep and poller, would stall everyone's inserts. The
    owners' tables show the FAILED jobs: their change marks move on (webapp.services.jobs.change_marks).
    """
    collection = Job._get_collection()
    expired = {"status": JobStatus.PENDING, "expires_at": {"$lte": now}}
    found = list(collection.find(expired, {"_id": 1, "owner_id": 1}).limit(limit))
    if not found:
        return 0
    result = collection.update_many(
        {"_id": {"$in": [job["_id"] for job in found]}, **expired},
        {
            "$set": {
                "status": JobStatus.FAILED,
                "updated_at": now,
                "last_error": f"{EXPIRED}: still waiting when expires_at passed; not sent",
            }
        },
    )
    if result.modified_count:
        change_marks.bump({job.get("owner_id") for job in found})
    return result.modified_count
