"""A job's delivery by a worker: claim, send, record the outcome, retry or fail.

A job goes PENDING → RUNNING (claimed, with a lease) → COMPLETED, or back to
PENDING after a transient failure (exponential backoff with jitter), or back
to PENDING with its attempt given back when the connection, its TLS or the
account failed rather than the message (it waits for the settings or the
server to be fixed, and never fails for that), or
FAILED (a permanent failure, or `max_attempts` used up), or IN_DOUBT (below).
The writes themselves, all fenced on the lease, are in webapp.services.delivery.attempts.

While the job is being sent, the process's lease renewer (webapp.services.delivery.leases)
keeps its lease. Before the message data goes out, the attempt must still
hold it: under IN_DOUBT_POLICY=hold that is a fenced write recording the DATA
stage; under `resend` (default) a local check suffices while the lease surely
has half its time left (docs/delivery.md, "Lease and fencing").

The double-send window: the time between the SMTP server's 250 to DATA and
`mark_sent` reaching the database. The mailer calls back on the 250, before
anything else, so the window is that one write; if the database is
unreachable then, the write is retried for `record_retry_seconds` (while the
renewer keeps the lease, nobody takes the job). A worker that dies inside the
window leaves a RUNNING job whose data went out, and so is a job whose data
went out but whose reply never came: policy `resend` (default,
at-least-once) tries again, policy `hold` sets IN_DOUBT for an admin to
resend or close (webapp.services.delivery.recovery).
"""

import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from pymongo.errors import ConnectionFailure
from pymongo.errors import PyMongoError

from webapp.mail.errors import PermanentSmtpError
from webapp.mail.errors import TransientSmtpError
from webapp.mail.errors import TransportSmtpError
from webapp.models import Job
from webapp.services.delivery import attempts
from webapp.services.delivery import expiry
from webapp.services.delivery.attempts import LeaseLost
from webapp.services.delivery.leases import RENEWER
from webapp.timeutil import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliverySettings:
    """The knobs of delivery, read from the app config by the caller."""

    lease_seconds: float = 6.0
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


class DeliveryOutcome(StrEnum):
    """What one run of `deliver` did, for the task that called it (and the process tally)."""

    SENT = "sent"  # the server took the message
    RETRY = "retry"  # it failed for now; an attempt was used and another is planned at retry_at
    WAITING = "waiting"  # the connection, TLS or account failed: no attempt used, tried again at retry_at
    FAILED = "failed"  # failed for good
    IN_DOUBT = "in_doubt"  # the worker lost the job while sending the data (held for an admin)
    SKIPPED = "skipped"  # not ours to send now (not due, not PENDING, paused, held): retry_at if due later
    LEASE_LOST = "lease_lost"  # another worker took the job over; this one wrote nothing


@dataclass(frozen=True)
class DeliveryResult:
    """What happened to one delivery attempt; `retry_at` is set when it must be tried again."""

    outcome: DeliveryOutcome
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


def record_failure(job, exc, settings):
    """A failed SMTP transaction: retry later, give up, hold it as in doubt, or wait for the server."""
    error = exc.describe()
    if isinstance(exc, TransportSmtpError):
        # The connection, its TLS or the account failed, not the message: this attempt is given back,
        # and the job waits with its own backoff (the count of such waits) until the settings are fixed;
        # like a retry, for the next opening of its windows, and FAILED as expired if that is too late.
        retry_at, expired = expiry.plan_retry(
            job, utcnow() + backoff_delay(job.get("transport_waits", 0) + 1, settings), error
        )
        if expired:
            if not attempts.mark_failed(job, expired, None):
                return DeliveryResult(DeliveryOutcome.LEASE_LOST)
            return DeliveryResult(DeliveryOutcome.FAILED)
        if not attempts.mark_waiting(job, error, retry_at):
            return DeliveryResult(DeliveryOutcome.LEASE_LOST)
        return DeliveryResult(DeliveryOutcome.WAITING, retry_at=retry_at)
    if exc.in_doubt and settings.in_doubt_policy == "hold":
        held = attempts.mark_in_doubt(job, error)
        return DeliveryResult(DeliveryOutcome.IN_DOUBT if held else DeliveryOutcome.LEASE_LOST)
    give_up = isinstance(exc, PermanentSmtpError) or job["attempts"] >= job["max_attempts"]
    retry_at = None
    if not give_up:  # the retry waits for the job's windows, and fails as expired if that is too late
        retry_at, expired = expiry.plan_retry(job, utcnow() + backoff_delay(job["attempts"], settings), error)
        if expired:
            error, give_up = expired, True
    if not attempts.mark_failed(job, error, retry_at):
        return DeliveryResult(DeliveryOutcome.LEASE_LOST)
    return DeliveryResult(DeliveryOutcome.FAILED if give_up else DeliveryOutcome.RETRY, retry_at=retry_at)


def deliver(job_id, worker_id, settings, send, renewer=RENEWER):
    """Claim `job_id` and send it with `send(job, before_data, on_accepted)`; return a DeliveryResult.

    `send` raises TransientSmtpError / PermanentSmtpError on failure; any
    other exception counts as a failed attempt too (transient, with backoff),
    so no job is ever tried more than `max_attempts` times. A database error
    that outlasts the retries is raised; the job's lease then brings it back.
    A job that is not ours to send is `skipped`, with `retry_at` set when it
    is PENDING but due later (the caller queues it for then).
    """
    sent_at = time.monotonic()
    job, due_later = attempts.claim(job_id, worker_id, settings.lease_seconds)
    if job is None:
        return DeliveryResult(DeliveryOutcome.SKIPPED, retry_at=due_later)
    expired = expiry.expired_error(job, utcnow())
    if expired:  # past its expiry: FAILED without sending (the claimed document says so, no read)
        attempts.mark_failed(job, expired, None)
        return DeliveryResult(DeliveryOutcome.FAILED)
    held = renewer.hold(job, settings.lease_seconds, sent_at)
    try:
        return _send_claimed(job, held, settings, send)
    finally:
        renewer.release(held)


def _send_claimed(job, held, settings, send):
    job_id = job["_id"]
    what = f"job {job_id}"
    accepted = False
    data_started = False

    def before_data():
        # The last check before the in-doubt window. Policy hold needs the DATA stage in the
        # job document before the data goes out; under resend the local fence suffices while
        # the lease surely has half its time left, else the same fenced write decides.
        nonlocal data_started
        if settings.in_doubt_policy == "hold" or not held.fence():
            written_at = time.monotonic()
            retry_while_unreachable(
                lambda: attempts.enter_data_stage(job, settings.lease_seconds), settings.lease_seconds, what
            )
            held.confirmed(written_at)
        held.entering_data()
        data_started = True

    def on_accepted():
        nonlocal accepted
        accepted = True
        if not retry_while_unreachable(lambda: attempts.mark_sent(job), settings.record_retry_seconds, what):
            log.warning("job %s: sent, but it was already COMPLETED: this copy is a duplicate", job_id)

    try:
        send(Job._from_son(job), before_data, on_accepted)
    except LeaseLost:
        log.warning("job %s: lease lost before sending; another worker owns it", job_id)
        attempts.note_lease_lost(job)
        return DeliveryResult(DeliveryOutcome.LEASE_LOST)
    except TransportSmtpError as exc:
        log.warning("job %s waits, no attempt used: the SMTP connection or account failed: %s", job_id, exc.describe())
        return retry_while_unreachable(
            lambda failure=exc: record_failure(job, failure, settings), settings.record_retry_seconds, what
        )
    except (TransientSmtpError, PermanentSmtpError) as exc:
        log.info(
            "job %s: %s failure: %s",
            job_id,
            "permanent" if isinstance(exc, PermanentSmtpError) else "transient",
            exc.describe(),
        )
        return retry_while_unreachable(
            lambda failure=exc: record_failure(job, failure, settings), settings.record_retry_seconds, what
        )
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
        return retry_while_unreachable(
            lambda: record_failure(job, failure, settings), settings.record_retry_seconds, what
        )
    except BaseException as exc:
        # Shutdown (KeyboardInterrupt, SystemExit): hand the job back now if we can;
        # if not, its lease runs out and recovery does it.
        _release_unless_sent(job, exc, accepted)
        raise
    return DeliveryResult(DeliveryOutcome.SENT)


def _release_unless_sent(job, exc, accepted):
    if accepted:
        return
    try:
        attempts.release_claim(job, f"{type(exc).__name__}: {exc}")
    except PyMongoError:
        log.warning("job %s: could not release the claim; lease recovery will", job["_id"])
