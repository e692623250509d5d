"""Admins act on many PENDING jobs at once: send now, cancel, reschedule (the overdue backlog after an
outage, say), on chosen jobs or on every job a table filter matches.

Each action is one update_many whose filter is the selection plus `status: PENDING`, so a job a
worker claimed meanwhile (or that was sent, or cancelled) is left alone, and the count returned is
what was really changed. The jobs sent now or rescheduled are then found by their new
`next_attempt_at` (an equality on the (status, next_attempt_at) index) and queued for it. These
are overrides: the time given is the time, windows are not applied to it (retries still respect
them), and a job whose expiry comes first fails as expired.
"""

from dataclasses import dataclass
from dataclasses import field
from datetime import timedelta
from typing import Annotated
from typing import Literal

from bson import ObjectId
from bson.errors import InvalidId
from pydantic import AfterValidator
from pydantic import ConfigDict
from pydantic import Field
from pydantic import StrictBool
from pydantic import StrictStr
from pydantic import model_validator

from webapp.models import Job
from webapp.models import JobStatus
from webapp.services.accounts import users
from webapp.services.errors import ValidationFailed
from webapp.services.jobs import actions
from webapp.services.jobs import change_marks
from webapp.services.jobs import job_timing
from webapp.services.jobs.job_timing import to_ms
from webapp.services.scheduling import timing
from webapp.services.scheduling.inputs import known_zone
from webapp.services.scheduling.inputs import omitted_means_unchanged
from webapp.services.scheduling.inputs import wall_or_instant
from webapp.services.validation import _Strict

ACTIONS = ("send_now", "cancel", "reschedule")
MAX_IDS = 1000
# Queued at once after an action; beyond that the periodic sweep queues the rest when they are due.
MAX_QUEUED = 10_000


def object_ids(values):
    """Pydantic check: job ids as ObjectIds."""
    try:
        return [ObjectId(value) for value in values]
    except (InvalidId, TypeError):
        raise ValueError("must be job ids") from None


class BulkFilter(_Strict):
    """The admin table's filters: a status (only PENDING jobs are acted on), an owner (id or email),
    `overdue` (PENDING more than OVERDUE_SECONDS past their effective send time)."""

    status: StrictStr | None = None
    owner: StrictStr | None = Field(None, max_length=320)
    overdue: StrictBool = False


class BulkInput(_Strict):
    """POST /api/admin/bulk/jobs: an action on `ids`, or on every job `filter` matches."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=omitted_means_unchanged)

    action: Literal["send_now", "cancel", "reschedule"]
    ids: Annotated[list[StrictStr], Field(min_length=1, max_length=MAX_IDS), AfterValidator(object_ids)] = None
    filter: BulkFilter = None
    send_at: Annotated[StrictStr, AfterValidator(wall_or_instant)] = None
    timezone: Annotated[StrictStr, Field(max_length=64), AfterValidator(known_zone)] = None

    @model_validator(mode="after")
    def one_selection(self):
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give either ids or filter")
        return self


@dataclass
class BulkResult:
    """How many jobs the action changed, and which to queue for when."""

    action: str
    affected: int
    queue: list = field(default_factory=list)


def selection(ids=None, owner_id=None, status=None, overdue_before=None):
    """The query of PENDING jobs an action applies to; None when it matches nothing."""
    query: dict = {"status": JobStatus.PENDING}
    if ids is not None:
        query["_id"] = {"$in": list(ids)}
        return query
    if owner_id is False or (status and status != JobStatus.PENDING):
        return None  # an unknown owner, or another status: no PENDING job matches
    if owner_id is not None:
        query["owner_id"] = owner_id
    if overdue_before is not None:  # the overdue backlog leaves held jobs out (their owner is disabled)
        query.update(next_attempt_at={"$lt": overdue_before}, held={"$exists": False})
    return query


def apply(action, query, now, send_at=None):
    """Run `action` on the jobs `query` selects (one update_many); a BulkResult.

    The jobs changed are then read back by what the update wrote (cancelled: `status` and
    `updated_at`, on the (status, updated_at) index; moved: `status` and `next_attempt_at`), for
    their owners, whose change marks move on (webapp.services.jobs.change_marks), and for the queue.
    Read after the write, not before, so a job that came to match meanwhile is not missed.
    """
    if query is None:
        return BulkResult(action, 0)
    collection = Job._get_collection()
    now = to_ms(now)  # as stored, so the read back by `updated_at` is an equality
    if action == "cancel":
        changed = collection.update_many(query, {"$set": {"status": JobStatus.CANCELLED, "updated_at": now}})
        if changed.modified_count:
            cancelled = collection.find({"status": JobStatus.CANCELLED, "updated_at": now}, {"owner_id": 1})
            change_marks.bump({job.get("owner_id") for job in cancelled})
        return BulkResult(action, changed.modified_count)
    due = to_ms(now if action == "send_now" else send_at)
    changed = collection.update_many(query, {"$set": {"next_attempt_at": due, "updated_at": now}})
    owners: set = set()
    queue: list = []
    for job in collection.find({"status": JobStatus.PENDING, "next_attempt_at": due}, {"owner_id": 1}):
        owners.add(job.get("owner_id"))
        if len(queue) < MAX_QUEUED:
            queue.append((job["_id"], due))
    if changed.modified_count:
        change_marks.bump(owners)
    return BulkResult(action, changed.modified_count, queue)


def run(data, admin_zone, overdue_seconds, now):
    """A validated BulkInput → BulkResult; `send_at` is read in `timezone` or the admin's zone.

    ValidationFailed for a reschedule without a good time or an unknown status filter.
    """
    errors: dict = {}
    send_at = None
    if data.action == "reschedule":
        if data.send_at is None:
            errors["send_at"] = "is required to reschedule"
        else:
            send_at = job_timing.read_or_error(
                data.send_at, timing.zone(data.timezone or admin_zone), now, errors, "send_at"
            )
    if data.ids is not None:
        query = selection(ids=data.ids)
    else:
        status = actions.check_status_filter(data.filter.status)
        overdue_before = now - timedelta(seconds=overdue_seconds) if data.filter.overdue else None
        query = selection(owner_id=users.owner_id_for(data.filter.owner), status=status, overdue_before=overdue_before)
    if errors:
        raise ValidationFailed("Some fields are not valid.", errors)
    return apply(data.action, query, now, send_at)
