"""One delivery attempt's writes to its job: the claim, the lease and the fenced outcomes.

The claim is one find-and-modify that hands out a fresh lease token. Every
later write of the attempt is conditional on that token and on the job still
being RUNNING (fencing), so a worker that lost its lease cannot overwrite
what happened since. `mark_sent` is the deliberate exception (see there).
Each write is a single atomic update of one document; the decisions (retry
or give up, which policy) live in webapp.services.delivery.rules.
"""

import uuid
from datetime import timedelta

from pymongo import UpdateOne

from webapp.models import Job
from webapp.models import JobStatus
from webapp.models.job import AttemptOutcome
from webapp.models.job import DeliveryStage
from webapp.services.jobs import change_marks
from webapp.timeutil import as_utc
from webapp.timeutil import utcnow

LEASE_FIELDS = {"lease_token": "", "lease_owner": "", "lease_expires_at": "", "delivery_stage": ""}


class LeaseLost(Exception):
    """The job's lease moved to someone else: stop without touching the job."""


def _collection():
    return Job._get_collection()


def _changed(job, result=None):
    """After a write: the job's tables show something new, so their change marks move on soon
    (webapp/services/jobs/change_marks.py, no round trip now). Returns `result`, for `return _changed(job, ...)`."""
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


def _claim_update(worker_id, lease_seconds, now):
    return {
        "$set": {
            "status": JobStatus.RUNNING,
            "lease_token": uuid.uuid4().hex,
            "lease_owner": worker_id,
            "lease_expires_at": now + timedelta(seconds=lease_seconds),
            "delivery_stage": DeliveryStage.CLAIMED,
            "updated_at": now,
        },
        "$inc": {"attempts": 1, "attempts_left": -1},
        "$push": {"attempts_log": {"worker": worker_id, "started_at": now, "outcome": AttemptOutcome.RUNNING}},
    }


def claim(job_id, worker_id, lease_seconds, now=None):
    """Claim a due PENDING job: (the claimed job, None), or (None, when it is due) if it is not ours.

    One find-and-modify on the happy path: `PENDING, due and attempts_left > 0
    → RUNNING` with a fresh lease, `attempts` up and `attempts_left` down by
    one, so two workers cannot both win and no job runs more than
    `max_attempts` times. (MongoDB could compare `attempts` with
    `max_attempts` in the filter with `$expr`; FerretDB v1 cannot, hence the
    counter kept beside them: `attempts + attempts_left = max_attempts`.)

    Only when the claim fails is the job read, to say why: not PENDING (sent,
    cancelled, taken by another task) or held (its owner is disabled: enabling
    queues it again) gives (None, None); PENDING but due later
    (rescheduled) gives (None, its next_attempt_at); PENDING with no attempts
    left is put FAILED. A document written before `attempts_left` existed is
    given the field here, once (the write is conditional on it still missing),
    and claimed again.
    """
    now = now or utcnow()
    # A held job (its owner is disabled) stays PENDING and is never claimed.
    due = {"_id": job_id, "status": JobStatus.PENDING, "next_attempt_at": {"$lte": now}, "held": {"$exists": False}}
    update = _claim_update(worker_id, lease_seconds, now)
    job = _collection().find_one_and_update({**due, "attempts_left": {"$gt": 0}}, update, return_document=True)
    if job is not None:
        _changed(job)
        return job, None
    seen = _collection().find_one(
        {"_id": job_id},
        {
            "status": 1,
            "next_attempt_at": 1,
            "attempts": 1,
            "held": 1,
            "max_attempts": 1,
            "attempts_left": 1,
            "last_error": 1,
            "owner_id": 1,
        },
    )
    if seen is None or seen["status"] != JobStatus.PENDING or seen.get("held"):
        return None, None
    if as_utc(seen["next_attempt_at"]) > now:
        return None, as_utc(seen["next_attempt_at"])
    if "attempts_left" not in seen:
        if _add_attempts_left(seen):
            return claim(job_id, worker_id, lease_seconds, now)
        return None, None
    if seen["attempts_left"] <= 0:
        _fail_exhausted(seen, now)
    return None, None


def _add_attempts_left(job):
    """Give a job stored before `attempts_left` existed its counter; True if this call set it."""
    left = max(job["max_attempts"] - job["attempts"], 0)
    return (
        _collection()
        .update_one(
            {
                "_id": job["_id"],
                "attempts_left": {"$exists": False},
                "attempts": job["attempts"],
                "max_attempts": job["max_attempts"],
            },
            {"$set": {"attempts_left": left}},
        )
        .matched_count
        == 1
    )


def exhausted_error(job, reason=None):
    """The last_error of a job that has no attempts left: why, and what went wrong before."""
    used = f"no attempts left ({job['attempts']} of {job['max_attempts']} used)"
    earlier = reason or job.get("last_error")
    return f"{used}; last error: {earlier}" if earlier else used


def _fail_exhausted(job, now):
    """PENDING with no attempt left (left so by older versions, or by hand): FAILED, no new attempt."""
    _collection().update_one(
        {"_id": job["_id"], "status": JobStatus.PENDING, "attempts_left": job["attempts_left"]},
        {"$set": {"status": JobStatus.FAILED, "updated_at": now, "last_error": exhausted_error(job)[:2000]}},
    )
    _changed(job)


def renew_leases(leases, now=None):
    """Renew several leases in one bulk write: [(job, lease_seconds, at_data)]; how many were still held.

    `at_data`: the send has begun its DATA stage, and the job document learns
    it with this renewal (under IN_DOUBT_POLICY=resend nothing else writes it).
    """
    now = now or utcnow()
    requests = []
    for job, lease_seconds, at_data in leases:
        fields = {"lease_expires_at": now + timedelta(seconds=lease_seconds)}
        if at_data:
            fields["delivery_stage"] = DeliveryStage.DATA
        requests.append(UpdateOne(_fenced(job), {"$set": fields}))
    return _collection().bulk_write(requests, ordered=False).matched_count


def still_holds(job):
    """True while the job is RUNNING on this attempt's lease token."""
    return _collection().find_one(_fenced(job), {"_id": 1}) is not None


def enter_data_stage(job, lease_seconds):
    """Record that the message data is about to go out (the in-doubt window opens).

    Only while our lease has not run out, and it is renewed in the same write:
    recovery can never be taking the job back while its data is going out.
    Made under IN_DOUBT_POLICY=hold (recovery must know the data may have gone
    out), and under `resend` only when the local fence cannot vouch for the
    lease (webapp.services.delivery.leases).
    """
    now = utcnow()
    result = _collection().update_one(
        _fenced(job, {"lease_expires_at": {"$gt": now}}),
        {
            "$set": {
                "delivery_stage": DeliveryStage.DATA,
                "updated_at": now,
                "lease_expires_at": now + timedelta(seconds=lease_seconds),
            }
        },
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
        "$set": {
            "status": JobStatus.COMPLETED,
            "sent_at": now,
            "updated_at": now,
            **attempt_fields(job, AttemptOutcome.SENT, now),
        },
        # Absent, not null: a stored null in a field turns FerretDB's sort pushdown off for it.
        "$unset": {**LEASE_FIELDS, "last_error": ""},
    }
    completed = _collection().update_one({"_id": job["_id"], "status": {"$ne": JobStatus.COMPLETED}}, update)
    if not completed.matched_count:
        # Someone else already completed it, so this copy was a duplicate: keep the history true.
        _collection().update_one({"_id": job["_id"]}, {"$set": attempt_fields(job, AttemptOutcome.SENT, now)})
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
    fields.update(attempt_fields(job, AttemptOutcome.FAILED if retry_at is None else AttemptOutcome.RETRY, now, error))
    # The server answered about the message: the connection works, so a later wait starts its backoff afresh.
    unset = {**LEASE_FIELDS, "transport_waits": ""}
    result = _collection().update_one(_fenced(job), {"$set": fields, "$unset": unset})
    return _changed(job, result.matched_count == 1)


def mark_waiting(job, error, retry_at):
    """The connection, TLS or account failed before any message was offered: PENDING until `retry_at`,
    and the attempt the claim counted is given back; False if fenced out.

    `attempts` and `attempts_left` return to what they were and the claim's
    history entry is taken off again (it is the last one, and ours alone), so
    a job never fails for a wrong password or an unverifiable certificate,
    and its history stays one entry per real attempt however long it waits.
    `transport_waits` counts the waits, for their backoff; `last_error` says why.
    """
    now = utcnow()
    update = {
        "$set": {
            "status": JobStatus.PENDING,
            "next_attempt_at": retry_at,
            "updated_at": now,
            "last_error": error[:2000],
        },
        "$inc": {"attempts": -1, "attempts_left": 1, "transport_waits": 1},
        "$pop": {"attempts_log": 1},
        "$unset": LEASE_FIELDS,
    }
    result = _collection().update_one(_fenced(job), update)
    return _changed(job, result.matched_count == 1)


def mark_in_doubt(job, error):
    """The data went out and no answer came, and the policy is `hold`: IN_DOUBT; False if fenced out."""
    now = utcnow()
    text = f"{error}; delivery is in doubt"
    fields = {
        "status": JobStatus.IN_DOUBT,
        "updated_at": now,
        "last_error": text[:2000],
        **attempt_fields(job, AttemptOutcome.IN_DOUBT, now, text),
    }
    result = _collection().update_one(_fenced(job), {"$set": fields, "$unset": LEASE_FIELDS})
    return _changed(job, result.matched_count == 1)


def note_lease_lost(job):
    """Close this attempt's history entry after losing the lease (the entry is ours alone)."""
    error = "lease lost before the message data was sent; this attempt sent nothing"
    _collection().update_one(
        {"_id": job["_id"]}, {"$set": attempt_fields(job, AttemptOutcome.LEASE_LOST, utcnow(), error)}
    )
    _changed(job)


def release_claim(job, reason):
    """Give a claimed job back before DATA (shutdown, lost database): PENDING now, or FAILED
    when that was its last attempt (the claim counted it, and no job runs more than max_attempts)."""
    now = utcnow()
    fields = {
        "status": JobStatus.PENDING,
        "next_attempt_at": now,
        "updated_at": now,
        **attempt_fields(job, AttemptOutcome.RELEASED, now, reason),
    }
    if job["attempts"] >= job["max_attempts"]:
        fields.pop("next_attempt_at")
        fields.update(status=JobStatus.FAILED, last_error=exhausted_error(job, reason)[:2000])
    _collection().update_one(
        _fenced(job, {"delivery_stage": DeliveryStage.CLAIMED}), {"$set": fields, "$unset": LEASE_FIELDS}
    )
    _changed(job)
