"""A job's delivery by a worker: claim, send, record the outcome, retry or fail.

A job goes PENDING → RUNNING (claimed, with a lease) → COMPLETED, or back to
PENDING after a transient failure (exponential backoff with jitter), or
FAILED (a permanent failure, or `max_attempts` used up), or IN_DOUBT (below).
The writes themselves, all fenced on the lease, are in webapp.services.attempts.

The double-send window: the time between the SMTP server's 250 to DATA and
`mark_sent` reaching the database. The mailer calls back on the 250, before
QUIT, so the window is that one write; if the database is unreachable then,
the write is retried for `record_retry_seconds` (entering DATA renewed the
lease, so nobody takes the job meanwhile). A worker that dies inside the
window leaves a RUNNING job at stage DATA, which recovery treats as in doubt
(webapp.services.recovery), and so is a job whose data went out but whose
reply never came: policy `resend` (default, at-least-once) tries again,
policy `hold` sets IN_DOUBT for an admin to resend or close.
"""

import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from pymongo.errors import ConnectionFailure
from pymongo.errors import PyMongoError

from webapp.models import Job
from webapp.services import attempts
from webapp.services import expiry
from webapp.services.attempts import LeaseLost
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
    # How long to keep retrying an outcome's write while the database is unreachable.
    record_retry_seconds: float = 120.0

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

    outcome: str  # sent, retry, failed, in_doubt, skipped, lease_lost
    retry_at: object = None


def backoff_delay(attempt, settings, rng=random):
    """Exponential backoff with jitter: base·2^(n-1), capped, then a random 50–100 %."""
    ceiling = min(settings.retry_cap_seconds, settings.retry_base_seconds * 2 ** max(attempt - 1, 0))
    return timedelta(seconds=ceiling * rng.uniform(0.5, 1.0))


def retry_while_unreachable(write, seconds, what):
    """Run `write()`, retrying for up to `seconds` while the database cannot be reached.

    Only for writes that are safe to repeat (fenced or idempotent): after a
    network error nobody knows whether the first try was applied.
    """
    deadline = time.monotonic() + seconds
    pause = 0.2
    while True:
        try:
            return write()
        except ConnectionFailure as exc:
            if time.monotonic() + pause > deadline:
                raise
            log.warning("%s: database unreachable (%s); retrying", what, exc)
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


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
            try:
                renewed = attempts.renew_lease(self.job, self.settings.lease_seconds)
            except PyMongoError as exc:
                # Keep trying: the lease may still be ours when the database is back.
                log.warning("job %s: could not renew the lease: %s", self.job["_id"], exc)
                continue
            if not renewed:
                self.lost = True
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def record_failure(job, exc, settings):
    """A failed SMTP transaction: retry later, give up, or hold it as in doubt."""
    error = exc.describe()
    if exc.in_doubt and settings.in_doubt_policy == "hold":
        held = attempts.mark_in_doubt(job, error)
        return DeliveryResult("in_doubt" if held else "lease_lost")
    give_up = isinstance(exc, PermanentSmtpError) or job["attempts"] >= job["max_attempts"]
    retry_at = None
    if not give_up:  # the retry waits for the job's windows, and fails as expired if that is too late
        retry_at, expired = expiry.plan_retry(job, utcnow() + backoff_delay(job["attempts"], settings), error)
        if expired:
            error, give_up = expired, True
    if not attempts.mark_failed(job, error, retry_at):
        return DeliveryResult("lease_lost")
    return DeliveryResult("failed" if give_up else "retry", retry_at=retry_at)


def deliver(job_id, worker_id, settings, send, on_claimed=None):
    """Claim `job_id` and send it with `send(job, before_data, on_accepted)`; return a DeliveryResult.

    `send` raises TransientSmtpError / PermanentSmtpError on failure; any
    other exception counts as a failed attempt too (transient, with backoff),
    so no job is ever tried more than `max_attempts` times. A database error
    that outlasts the retries is raised; the job's lease then brings it back.
    `on_claimed(job)` lets the caller schedule the lease check.
    """
    job = attempts.claim_job(job_id, worker_id, settings.lease_seconds)
    if job is None:
        return DeliveryResult("skipped")
    if on_claimed:
        on_claimed(job)
    expired = expiry.expired_error(job, utcnow())
    if expired:  # past its expiry: FAILED without sending (the claimed document says so, no read)
        attempts.mark_failed(job, expired, None)
        return DeliveryResult("failed")
    what = f"job {job_id}"
    accepted = False
    data_started = False

    def before_data():
        nonlocal data_started
        retry_while_unreachable(lambda: attempts.enter_data_stage(job, settings.lease_seconds),
                                settings.lease_seconds, what)
        data_started = True

    def on_accepted():
        nonlocal accepted
        accepted = True
        if not retry_while_unreachable(lambda: attempts.mark_sent(job), settings.record_retry_seconds, what):
            log.warning("job %s: sent, but it was already COMPLETED: this copy is a duplicate", job_id)

    try:
        with LeaseKeeper(job, settings):
            send(Job._from_son(job), before_data, on_accepted)
    except LeaseLost:
        log.warning("job %s: lease lost before sending; another worker owns it", job_id)
        attempts.note_lease_lost(job)
        return DeliveryResult("lease_lost")
    except (TransientSmtpError, PermanentSmtpError) as exc:
        log.info("job %s: %s failure: %s", job_id, "permanent" if isinstance(exc, PermanentSmtpError)
                 else "transient", exc.describe())
        return retry_while_unreachable(lambda: record_failure(job, exc, settings), settings.record_retry_seconds, what)
    except Exception as exc:
        if accepted or isinstance(exc, PyMongoError):
            # Sent (only recording it failed), or the database is away: the caller retries,
            # and the lease brings the job back if nobody can record anything meanwhile.
            _release_unless_sent(job, exc, accepted)
            raise
        # Anything else (a bug, a message that cannot be built) is this attempt's failure like an
        # SMTP error: it counts, and the job retries with backoff until max_attempts, then FAILED.
        log.exception("job %s: delivery attempt failed with an unexpected error", job_id)
        failure = TransientSmtpError(None, f"unexpected error: {type(exc).__name__}: {exc}", in_doubt=data_started)
        return retry_while_unreachable(lambda: record_failure(job, failure, settings),
                                       settings.record_retry_seconds, what)
    except BaseException as exc:
        # Shutdown (KeyboardInterrupt, SystemExit): hand the job back now if we can;
        # if not, its lease runs out and recovery does it.
        _release_unless_sent(job, exc, accepted)
        raise
    return DeliveryResult("sent")


def _release_unless_sent(job, exc, accepted):
    if accepted:
        return
    try:
        attempts.release_claim(job, f"{type(exc).__name__}: {exc}")
    except PyMongoError:
        log.warning("job %s: could not release the claim; lease recovery will", job["_id"])
