"""The safety net: recover jobs whose worker died, find due jobs nobody queued.

Huey loses a task that is in flight when its consumer is killed, so the job
documents, not the queue, decide what still needs sending. Every change here
is conditional on the lease token seen, so any number of sweepers can run at
once and each expired lease is recovered exactly once.

A RUNNING job whose lease ran out goes back to PENDING (the attempt counts),
or to FAILED when its attempts are used up. If its worker had begun sending
the message data (delivery_stage DATA) the email may have gone out:
IN_DOUBT_POLICY `resend` (default) sends it again, at-least-once; `hold`
sets IN_DOUBT for an admin to resend (/retry) or close (/close).
"""

from datetime import timedelta

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from webapp.models import Job
from webapp.models import JobStatus
from webapp.models import SweepTurn
from webapp.models.job import AttemptOutcome
from webapp.models.job import DeliveryStage
from webapp.services.delivery.attempts import LEASE_FIELDS
from webapp.services.delivery.attempts import attempt_fields
from webapp.services.delivery.expiry import retry_time
from webapp.services.jobs import change_marks
from webapp.timeutil import utcnow

WORKER_DIED = "worker stopped responding (lease expired)"
DIED_WHILE_SENDING = "worker stopped responding while sending the message data; delivery is in doubt"


def _recover(job, settings, now):
    """Move one RUNNING job with an expired lease on; returns its new status or None."""
    in_doubt = job.get("delivery_stage") == DeliveryStage.DATA
    exhausted = job["attempts"] >= job["max_attempts"]
    if in_doubt and settings.in_doubt_policy == "hold":
        status, outcome = JobStatus.IN_DOUBT, AttemptOutcome.IN_DOUBT
    elif exhausted:
        status, outcome = JobStatus.FAILED, AttemptOutcome.IN_DOUBT if in_doubt else AttemptOutcome.LEASE_EXPIRED
    else:
        status, outcome = JobStatus.PENDING, AttemptOutcome.IN_DOUBT if in_doubt else AttemptOutcome.LEASE_EXPIRED
    error = DIED_WHILE_SENDING if in_doubt else WORKER_DIED
    fields = {"status": status, "updated_at": now, "last_error": error, **attempt_fields(job, outcome, now, error)}
    if status == JobStatus.PENDING:  # again at once, or at the next opening of its windows
        fields["next_attempt_at"] = retry_time(job, now)
    result = Job._get_collection().update_one(
        {
            "_id": job["_id"],
            "status": JobStatus.RUNNING,
            "lease_token": job["lease_token"],
            "lease_expires_at": {"$lt": now},
        },
        {"$set": fields, "$unset": LEASE_FIELDS},
    )
    if result.matched_count != 1:
        return None
    change_marks.note(job.get("owner_id"))
    return status


def recover_expired_leases(settings, now=None):
    """Recover RUNNING jobs whose lease ran out; returns [(job_id, new_status)].

    Run by every consumer's maintenance thread each heartbeat and by the
    periodic sweep: one query on the (status, lease_expires_at) index (on
    FerretDB it reads the collection unless filters are pushed down to SQLite).
    """
    now = now or utcnow()
    query = {"status": JobStatus.RUNNING, "lease_expires_at": {"$lt": now}}
    recovered = []
    # The zone and windows too: a job given back waits for the next opening of its windows. The owner:
    # their tables' change marks move on.
    fields = {
        "lease_token": 1,
        "delivery_stage": 1,
        "attempts": 1,
        "max_attempts": 1,
        "timezone": 1,
        "windows": 1,
        "owner_id": 1,
    }
    for job in Job._get_collection().find(query, fields):
        status = _recover(job, settings, now)
        if status:
            recovered.append((job["_id"], status))
    return recovered


def next_attempt_of(job_id):
    """When a PENDING job may next be tried, or None if it is not PENDING.

    The check a task queued by the sweep makes before claiming: most such tasks
    are redundant (the job was queued and sent meanwhile), and a read costs
    less than a find-and-modify that fails (FerretDB serialises writes).
    """
    job = Job._get_collection().find_one({"_id": job_id, "status": JobStatus.PENDING}, {"next_attempt_at": 1})
    return job["next_attempt_at"] if job else None


def due_unqueued_jobs(grace_seconds=5.0, limit=10000, now=None):
    """PENDING jobs due for longer than `grace_seconds`: their queue entry was lost or never made.

    Re-enqueueing one that is in fact queued is harmless: the claim is atomic.
    """
    now = now or utcnow()
    cursor = (
        Job._get_collection()
        .find(
            {
                "status": JobStatus.PENDING,
                "next_attempt_at": {"$lte": now - timedelta(seconds=grace_seconds)},
                "held": {"$exists": False},
            },  # held jobs wait for their owner to be enabled
            {"_id": 1, "next_attempt_at": 1},
        )
        .sort("next_attempt_at", 1)
        .limit(limit)
    )
    return [(job["_id"], job["next_attempt_at"]) for job in cursor]


def take_sweep_turn(name, holder, interval_seconds, now=None):
    """True for the one caller per `interval_seconds` that should run the periodic task `name`.

    One find-and-modify with upsert: the turn is taken when it is free or
    overdue; a concurrent taker either finds it taken or collides on the
    primary key, and skips.
    """
    now = now or utcnow()
    try:
        turn = SweepTurn._get_collection().find_one_and_update(
            {"_id": name, "next_turn_at": {"$lte": now}},
            {"$set": {"holder": holder, "taken_at": now, "next_turn_at": now + timedelta(seconds=interval_seconds)}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
    except DuplicateKeyError:
        return False  # the turn exists and is not due: someone else has it
    return turn is not None
