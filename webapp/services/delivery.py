"""A job's delivery by a worker: claim, send, record the outcome, retry or fail.

Every write after the claim is conditional on the lease token the claim
handed out (fencing): a worker that lost its lease cannot overwrite what a
newer owner or the recovery sweep decided. The one write that is not fenced
on the token alone is the completion after SMTP accepted the message: that is
the truth about the email, so it also wins over a job the sweep put back to
PENDING (which would otherwise be sent twice).
"""

import logging
import random
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta

from webapp.models import Job
from webapp.models import JobStatus
from webapp.models.job import DeliveryStage
from webapp.services.mailer import PermanentSmtpError
from webapp.services.mailer import TransientSmtpError
from webapp.timeutil import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliverySettings:
    """The knobs of delivery, read from the app config by the caller."""

    lease_seconds: float = 60.0
    retry_base_seconds: float = 30.0
    retry_cap_seconds: float = 3600.0
    in_doubt_policy: str = "resend"

    @classmethod
    def from_config(cls, config):
        return cls(
            lease_seconds=config["LEASE_SECONDS"],
            retry_base_seconds=config["RETRY_BASE_SECONDS"],
            retry_cap_seconds=config["RETRY_CAP_SECONDS"],
            in_doubt_policy=config["IN_DOUBT_POLICY"],
        )


@dataclass(frozen=True)
class DeliveryResult:
    """What happened to one delivery attempt; `retry_at` is set when it must be tried again."""

    outcome: str  # sent, retry, failed, skipped, lease_lost
    retry_at: object = None
    lease_expires_at: object = None


class LeaseLost(Exception):
    """The job's lease moved to someone else: stop without touching the job."""


def _collection():
    return Job._get_collection()


def backoff_delay(attempt, settings, rng=random):
    """Exponential backoff with jitter: base·2^(n-1), capped, then a random 50–100 %."""
    ceiling = min(settings.retry_cap_seconds, settings.retry_base_seconds * 2 ** max(attempt - 1, 0))
    return timedelta(seconds=ceiling * rng.uniform(0.5, 1.0))


def claim_job(job_id, worker_id, settings, now=None):
    """Atomically move a due PENDING job to RUNNING with a fresh lease; None if not ours.

    One find-and-modify: two workers claiming the same job cannot both win.
    """
    now = now or utcnow()
    token = uuid.uuid4().hex
    return _collection().find_one_and_update(
        {"_id": job_id, "status": JobStatus.PENDING, "next_attempt_at": {"$lte": now}},
        {
            "$set": {
                "status": JobStatus.RUNNING,
                "lease_token": token,
                "lease_owner": worker_id,
                "lease_expires_at": now + timedelta(seconds=settings.lease_seconds),
                "delivery_stage": DeliveryStage.CLAIMED,
                "updated_at": now,
            },
            "$inc": {"attempts": 1},
            "$push": {"attempts_log": {"worker": worker_id, "started_at": now, "outcome": "running"}},
        },
        return_document=True,
    )


def _fenced(job, extra=None):
    query = {"_id": job["_id"], "status": JobStatus.RUNNING, "lease_token": job["lease_token"]}
    query.update(extra or {})
    return query


def attempt_fields(job, outcome, now, error=None):
    index = job["attempts"] - 1
    fields = {f"attempts_log.{index}.outcome": outcome, f"attempts_log.{index}.finished_at": now}
    if error:
        fields[f"attempts_log.{index}.error"] = error
    return fields


LEASE_FIELDS = {"lease_token": "", "lease_owner": "", "lease_expires_at": "", "delivery_stage": ""}


def renew_lease(job, settings):
    """Push the lease out while a long send is in progress; False if the lease is gone."""
    now = utcnow()
    result = _collection().update_one(
        _fenced(job), {"$set": {"lease_expires_at": now + timedelta(seconds=settings.lease_seconds)}}
    )
    return result.matched_count == 1


def enter_data_stage(job):
    """Record that the message data is about to go out (the in-doubt window opens)."""
    result = _collection().update_one(
        _fenced(job), {"$set": {"delivery_stage": DeliveryStage.DATA, "updated_at": utcnow()}}
    )
    if result.matched_count != 1:
        raise LeaseLost(str(job["_id"]))


def mark_sent(job):
    """The SMTP server accepted the message: COMPLETED, in one write.

    Matches our lease, or the job put back to PENDING/IN_DOUBT by the sweep
    after our lease ran out (sending it again would be a duplicate).
    """
    now = utcnow()
    query = {
        "_id": job["_id"],
        "$or": [
            {"status": JobStatus.RUNNING, "lease_token": job["lease_token"]},
            {"status": {"$in": [JobStatus.PENDING, JobStatus.IN_DOUBT]}},
        ],
    }
    update = {
        "$set": {"status": JobStatus.COMPLETED, "sent_at": now, "updated_at": now, "last_error": None,
                 **attempt_fields(job, "sent", now)},
        "$unset": LEASE_FIELDS,
    }
    return _collection().update_one(query, update).matched_count == 1


def mark_failed_attempt(job, error, settings, permanent):
    """Record a failed attempt: retry later (PENDING + backoff) or give up (FAILED)."""
    now = utcnow()
    give_up = permanent or job["attempts"] >= job["max_attempts"]
    fields = {"updated_at": now, "last_error": error[:2000]}
    if give_up:
        fields["status"] = JobStatus.FAILED
        retry_at = None
    else:
        retry_at = now + backoff_delay(job["attempts"], settings)
        fields.update(status=JobStatus.PENDING, next_attempt_at=retry_at)
    fields.update(attempt_fields(job, "failed" if give_up else "retry", now, error[:2000]))
    matched = _collection().update_one(_fenced(job), {"$set": fields, "$unset": LEASE_FIELDS}).matched_count
    if not matched:
        return DeliveryResult("lease_lost")
    return DeliveryResult("failed" if give_up else "retry", retry_at=retry_at)


def release_claim(job, reason):
    """Give a claimed job back (shutdown before DATA): PENDING now, the attempt not counted as sent."""
    now = utcnow()
    fields = {"status": JobStatus.PENDING, "next_attempt_at": now, "updated_at": now,
              **attempt_fields(job, "released", now, reason)}
    _collection().update_one(_fenced(job, {"delivery_stage": DeliveryStage.CLAIMED}),
                             {"$set": fields, "$unset": LEASE_FIELDS})


class LeaseKeeper:
    """Renews the lease in a background thread while the SMTP transaction runs."""

    def __init__(self, job, settings):
        self.job = job
        self.settings = settings
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)

    def _run(self):
        interval = max(self.settings.lease_seconds / 3, 0.2)
        while not self._stop.wait(interval):
            if not renew_lease(self.job, self.settings):
                self.lost = True
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def deliver(job_id, worker_id, settings, send, on_claimed=None):
    """Claim `job_id` and send it with `send(job, before_data)`; return a DeliveryResult.

    `send` raises TransientSmtpError / PermanentSmtpError on failure.
    `on_claimed(job)` lets the caller schedule the lease check.
    """
    job = claim_job(job_id, worker_id, settings)
    if job is None:
        return DeliveryResult("skipped")
    if on_claimed:
        on_claimed(job)
    job_doc = Job._from_son(job)

    def before_data():
        enter_data_stage(job)

    try:
        with LeaseKeeper(job, settings):
            send(job_doc, before_data)
    except LeaseLost:
        log.warning("job %s: lease lost before sending; another worker owns it", job_id)
        return DeliveryResult("lease_lost")
    except TransientSmtpError as exc:
        log.info("job %s: transient failure: %s", job_id, exc.describe())
        return mark_failed_attempt(job, exc.describe(), settings, permanent=False)
    except PermanentSmtpError as exc:
        log.info("job %s: permanent failure: %s", job_id, exc.describe())
        return mark_failed_attempt(job, exc.describe(), settings, permanent=True)
    except BaseException as exc:
        # Shutdown or a bug before DATA: hand the job back instead of waiting for the lease.
        release_claim(job, f"{type(exc).__name__}: {exc}")
        raise
    if not mark_sent(job):
        log.warning("job %s: sent, but another owner changed it meanwhile", job_id)
    return DeliveryResult("sent")
