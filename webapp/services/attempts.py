"""One delivery attempt's writes to its job: the claim, the lease and the fenced outcomes.

The claim is one find-and-modify that hands out a fresh lease token. Every
later write of the attempt is conditional on that token and on the job still
being RUNNING (fencing), so a worker that lost its lease cannot overwrite
what happened since. `mark_sent` is the deliberate exception (see there).
Each write is a single atomic update of one document; the decisions (retry
or give up, which policy) live in webapp.services.delivery.
"""

import uuid
from datetime import timedelta

from webapp.models import Job
from webapp.models import JobStatus
from webapp.models.job import DeliveryStage
from webapp.services import change_marks
from webapp.timeutil import utcnow

LEASE_FIELDS = {"lease_token": "", "lease_owner": "", "lease_expires_at": "", "delivery_stage": ""}


class LeaseLost(Exception):
    """The job's lease moved to someone else: stop without touching the job."""


def _collection():
    return Job._get_collection()


def _changed(job, result=None):
    """After a write: the job's tables show something new, so their change marks move on soon
    (webapp/services/change_marks.py, no round trip now). Returns `result`, for `return _changed(job, ...)`."""
    change_marks.note(job.get("owner_id"))
    return result


def _fenced(job, extra=None):
    query = {"_id": job["_id"], "status": JobStatus.RUNNING, "lease_token": job["lease_token"]}
    query.update(extra or {})
    return query


def attempt_fields(job, outcome, now, error=None):
    """The `$set` fields that close this attempt's entry in the job's history."""
    index = job["attempts"] - 1
    fields = {f"attempts_log.{index}.outcome": outcome, f"attempts_log.{index}.finished_at": now}
    if error:
        fields[f"attempts_log.{index}.error"] = error[:2000]
    return fields


def claim_job(job_id, worker_id, lease_seconds, now=None):
    """Atomically move a due PENDING job to RUNNING with a fresh lease; None if not ours.

    One find-and-modify: two workers claiming the same job cannot both win.
    A job whose attempts are used up is never claimed (it would run once more
    than `max_attempts`): it is put FAILED instead. MongoDB could compare the
    two fields in the filter with `$expr`; FerretDB v1 cannot, so the limit is
    read first and the claim is conditional on it being unchanged.
    """
    now = now or utcnow()
    # A held job (its owner is disabled) stays PENDING and is never claimed.
    due = {"_id": job_id, "status": JobStatus.PENDING, "next_attempt_at": {"$lte": now}, "held": {"$exists": False}}
    seen = _collection().find_one(due, {"attempts": 1, "max_attempts": 1, "last_error": 1, "owner_id": 1})
    if seen is None:
        return None
    limit = seen["max_attempts"]
    if seen["attempts"] >= limit:
        _fail_exhausted(seen, now)
        return None
    claimed = _collection().find_one_and_update(
        {**due, "max_attempts": limit, "attempts": {"$lt": limit}},
        {
            "$set": {
                "status": JobStatus.RUNNING,
                "lease_token": uuid.uuid4().hex,
                "lease_owner": worker_id,
                "lease_expires_at": now + timedelta(seconds=lease_seconds),
                "delivery_stage": DeliveryStage.CLAIMED,
                "updated_at": now,
            },
            "$inc": {"attempts": 1},
            "$push": {"attempts_log": {"worker": worker_id, "started_at": now, "outcome": "running"}},
        },
        return_document=True,
    )
    if claimed is not None:
        _changed(claimed)
    return claimed


def exhausted_error(job, reason=None):
    """The last_error of a job that has no attempts left: why, and what went wrong before."""
    used = f"no attempts left ({job['attempts']} of {job['max_attempts']} used)"
    earlier = reason or job.get("last_error")
    return f"{used}; last error: {earlier}" if earlier else used


def _fail_exhausted(job, now):
    """PENDING with every attempt used (left so by older versions, or by hand): FAILED, no new attempt."""
    _collection().update_one(
        {"_id": job["_id"], "status": JobStatus.PENDING, "attempts": job["attempts"],
         "max_attempts": job["max_attempts"]},
        {"$set": {"status": JobStatus.FAILED, "updated_at": now, "last_error": exhausted_error(job)[:2000]}},
    )
    _changed(job)


def renew_lease(job, lease_seconds):
    """Push the lease out while a long send is in progress; False if the lease is gone."""
    now = utcnow()
    result = _collection().update_one(
        _fenced(job), {"$set": {"lease_expires_at": now + timedelta(seconds=lease_seconds)}}
    )
    return result.matched_count == 1


def enter_data_stage(job, lease_seconds):
    """Record that the message data is about to go out (the in-doubt window opens).

    Only while our lease has not run out, and it is renewed in the same write:
    recovery can never be taking the job back while its data is going out.
    """
    now = utcnow()
    result = _collection().update_one(
        _fenced(job, {"lease_expires_at": {"$gt": now}}),
        {"$set": {"delivery_stage": DeliveryStage.DATA, "updated_at": now,
                  "lease_expires_at": now + timedelta(seconds=lease_seconds)}},
    )
    if result.matched_count != 1:
        raise LeaseLost(str(job["_id"]))


def mark_sent(job):
    """The SMTP server accepted the message: COMPLETED, in one write; False if it already was.

    Not fenced on the token: the 250 is the truth about the email, so this
    wins over every status but COMPLETED, including a job the sweep took back
    after our lease ran out (it must not be sent again; a worker that
    re-claimed it and has not begun DATA will find `enter_data_stage` refused).
    """
    now = utcnow()
    update = {
        "$set": {"status": JobStatus.COMPLETED, "sent_at": now, "updated_at": now, **attempt_fields(job, "sent", now)},
        # Absent, not null: a stored null in a field turns FerretDB's sort pushdown off for it.
        "$unset": {**LEASE_FIELDS, "last_error": ""},
    }
    completed = _collection().update_one({"_id": job["_id"], "status": {"$ne": JobStatus.COMPLETED}}, update)
    if not completed.matched_count:
        # Someone else already completed it, so this copy was a duplicate: keep the history true.
        _collection().update_one({"_id": job["_id"]}, {"$set": attempt_fields(job, "sent", now)})
    _changed(job)
    return bool(completed.matched_count)


def mark_failed(job, error, retry_at):
    """Close a failed attempt: PENDING until `retry_at`, or FAILED when it is None; False if fenced out."""
    now = utcnow()
    fields = {"updated_at": now, "last_error": error[:2000]}
    if retry_at is None:
        fields["status"] = JobStatus.FAILED
    else:
        fields.update(status=JobStatus.PENDING, next_attempt_at=retry_at)
    fields.update(attempt_fields(job, "failed" if retry_at is None else "retry", now, error))
    result = _collection().update_one(_fenced(job), {"$set": fields, "$unset": LEASE_FIELDS})
    return _changed(job, result.matched_count == 1)


def mark_in_doubt(job, error):
    """The data went out and no answer came, and the policy is `hold`: IN_DOUBT; False if fenced out."""
    now = utcnow()
    text = f"{error}; delivery is in doubt"
    fields = {"status": JobStatus.IN_DOUBT, "updated_at": now, "last_error": text[:2000],
              **attempt_fields(job, "in_doubt", now, text)}
    result = _collection().update_one(_fenced(job), {"$set": fields, "$unset": LEASE_FIELDS})
    return _changed(job, result.matched_count == 1)


def note_lease_lost(job):
    """Close this attempt's history entry after losing the lease (the entry is ours alone)."""
    error = "lease lost before the message data was sent; this attempt sent nothing"
    _collection().update_one({"_id": job["_id"]}, {"$set": attempt_fields(job, "lease_lost", utcnow(), error)})
    _changed(job)


def release_claim(job, reason):
    """Give a claimed job back before DATA (shutdown, lost database): PENDING now, or FAILED
    when that was its last attempt (the claim counted it, and no job runs more than max_attempts)."""
    now = utcnow()
    fields = {"status": JobStatus.PENDING, "next_attempt_at": now, "updated_at": now,
              **attempt_fields(job, "released", now, reason)}
    if job["attempts"] >= job["max_attempts"]:
        fields.pop("next_attempt_at")
        fields.update(status=JobStatus.FAILED, last_error=exhausted_error(job, reason)[:2000])
    _collection().update_one(_fenced(job, {"delivery_stage": DeliveryStage.CLAIMED}),
                             {"$set": fields, "$unset": LEASE_FIELDS})
    _changed(job)
