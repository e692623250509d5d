"""Scheduled email jobs and the history of their delivery attempts.

The job document, not the queue, is the source of truth: a RUNNING job
carries a lease (`lease_token`, `lease_owner`, `lease_expires_at`) so that a
job whose worker died can be found and recovered, and so that a worker that
lost its lease cannot overwrite newer state (every change is conditional on
the token it holds).
"""

from enum import StrEnum

from mongoengine import DateTimeField
from mongoengine import Document
from mongoengine import EmbeddedDocument
from mongoengine import EmbeddedDocumentListField
from mongoengine import IntField
from mongoengine import ListField
from mongoengine import ObjectIdField
from mongoengine import StringField

from webapp.models.window import Window
from webapp.timeutil import utcnow


class JobStatus:
    """A job's life: PENDING → RUNNING → COMPLETED | FAILED, or CANCELLED / IN_DOUBT."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    # The worker died while the message data was being sent and the policy is `hold`.
    IN_DOUBT = "IN_DOUBT"
    ALL = (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, IN_DOUBT)
    FINAL = (COMPLETED, FAILED, CANCELLED)


class DeliveryStage:
    """How far the current attempt got; `DATA` marks the in-doubt window."""

    CLAIMED = "claimed"
    DATA = "data"


class AttemptOutcome(StrEnum):
    """How one attempt ended, as its entry in the job's history says (webapp/services/delivery/attempts.py)."""

    RUNNING = "running"  # claimed, not finished yet
    SENT = "sent"  # the server answered 250 to the message
    RETRY = "retry"  # failed for now; another attempt is planned
    FAILED = "failed"  # failed for good (a permanent refusal, or no attempts left)
    LEASE_EXPIRED = "lease_expired"  # its worker died before the message data; recovered
    IN_DOUBT = "in_doubt"  # its worker died while sending the data: it may have arrived
    LEASE_LOST = "lease_lost"  # its worker stalled past the lease and another took the job over
    RELEASED = "released"  # given back unsent (a connection, TLS or account failure): no attempt used


class Attempt(EmbeddedDocument):
    """One delivery attempt, shown to users as the job's history (its place in the list is its number)."""

    worker = StringField()
    started_at = DateTimeField()
    finished_at = DateTimeField()
    outcome = StringField(choices=tuple(AttemptOutcome))
    error = StringField()


class Job(Document):
    """Send `subject`/`body` to `to` at `send_at`."""

    owner_id = ObjectIdField(required=True)
    to = ListField(StringField(max_length=320), required=True)
    subject = StringField(required=True, max_length=998)
    body = StringField(required=True)
    send_at = DateTimeField(required=True)
    status = StringField(required=True, choices=JobStatus.ALL, default=JobStatus.PENDING)
    attempts = IntField(required=True, default=0)
    max_attempts = IntField(required=True, default=5)
    # max_attempts - attempts, kept beside them so the claim can require it above 0 with a plain
    # operator (FerretDB v1 has no $expr). Missing on jobs stored by earlier versions: the claim adds it.
    attempts_left = IntField()
    last_error = StringField()
    # How many times in a row the connection, its TLS or the account failed for this job (no attempt
    # used, webapp/services/delivery/attempts.py `mark_waiting`): the backoff of its next wait. Unset until then.
    transport_waits = IntField()
    # When the next attempt may start: send_at at first, then the retry backoff.
    next_attempt_at = DateTimeField(required=True)
    message_id = StringField(required=True)
    created_at = DateTimeField(required=True, default=utcnow)
    updated_at = DateTimeField(required=True, default=utcnow)
    sent_at = DateTimeField()

    lease_token = StringField()
    lease_owner = StringField()
    lease_expires_at = DateTimeField()
    delivery_stage = StringField()
    attempts_log = EmbeddedDocumentListField(Attempt)
    # Why the job must not be sent for now (`owner_disabled`); unset when it may go.
    # The claim refuses a job that has it (webapp/services/delivery/attempts.py).
    held = StringField()

    # Scheduling (webapp.services.scheduling.timing): the zone wall times and windows are read in, the windows
    # (empty: any time), and the instant after which the job is FAILED as expired instead of sent.
    # `next_attempt_at` is the effective send time: send_at pushed to the next window opening.
    timezone = StringField(max_length=64)
    windows = EmbeddedDocumentListField(Window)
    expires_at = DateTimeField()
    # An occurrence of a recurring schedule (webapp.services.recurring.schedules); its _id is derived from both.
    schedule_id = ObjectIdField()
    occurrence_at = DateTimeField()

    # Every query the app makes is an equality on an index's first fields, then a range or a sort
    # on the next ones (docs/queries.md lists each query with its index). Sorted lists end with
    # _id, so a page is stable, and so that MongoDB walks the index in order instead of sorting.
    meta = {
        "collection": "jobs",
        "indexes": [
            # The sweep's due jobs and the overdue backlog (oldest first); the status page's overdue count.
            ("status", "next_attempt_at", "id"),
            # Lease recovery: RUNNING jobs whose lease ran out.
            ("status", "lease_expires_at"),
            # A user's jobs, newest first.
            ("owner_id", "-created_at", "-id"),
            # A user's jobs of one status, newest first; a user's counts per status (from the index alone).
            ("owner_id", "status", "-created_at", "-id"),
            # The pending quota's count and its earliest due job; holding and releasing a disabled owner's jobs.
            ("owner_id", "status", "next_attempt_at"),
            # Everyone's jobs, newest first; and of one status; counts per status over all jobs.
            ("-created_at", "-id"),
            ("status", "-created_at", "-id"),
            # Retention: finished jobs whose last change is older than RETENTION_DAYS, oldest first.
            ("status", "updated_at"),
            # The sweep fails PENDING jobs past their expiry: {status: PENDING, expires_at: {$lte: now}}.
            ("status", "expires_at"),
            # Pausing, changing or deleting a schedule cancels its PENDING occurrences.
            ("schedule_id", "status"),
        ],
    }
