"""Turn a schedule's occurrences into ordinary jobs, ahead of time, never the same one twice.

Each active schedule always has its next occurrence waiting as a PENDING job, so it goes out on
time through the normal delivery path. When that occurrence's time has passed, the schedule is
due (`due_at`) and the next pass plans again: the occurrences since the last plan (after
downtime, the catch-up rule picks which of them), plus the next future one.

Any number of processes run passes at once: the periodic sweep, every consumer's maintenance
thread, and the web request that created or changed the schedule. They agree through the
schedule document and the jobs' primary key:

1. a plan is stored with one conditional update (on the schedule's `version` and the previous
   `plan_id`): one process wins it, the others find the document changed and stop;
2. whoever finds a stored plan not yet carried out (`planned`) inserts its jobs, the winner
   right away, anyone else after a crash; a job's `_id` is derived from the schedule, its
   version and the occurrence time, so a second insert of the same occurrence is a
   DuplicateKeyError, taken as "already made". (A unique index on (schedule_id,
   occurrence_at) would need a partial or sparse index, as other jobs have neither field:
   FerretDB v1 refuses `partialFilterExpression` and silently drops `sparse`, so the
   primary key is the one unique key that holds on both servers.)
3. the plan is then marked carried out; a pause, change or delete that came in between
   (a new `version`, or no document) makes the inserter cancel what it just made.

Catch-up after downtime (occurrences more than `misfire_seconds` late when planned): `none`
makes none of them, `latest` the most recent one (unless a recent one is made anyway), `all`
every one, at most `batch` per pass. The rule also holds for occurrences made before the
downtime: their jobs carry an `expires_at` (`none`: their effective time plus the grace;
`latest`: the next occurrence's effective time plus the grace), so an occurrence that could
not go out before being superseded fails as expired instead of going out late.
"""

import hashlib
import logging
import uuid
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timedelta

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from webapp.models import Job
from webapp.models import JobStatus
from webapp.models import Schedule
from webapp.models import User
from webapp.models.schedule import CatchUp
from webapp.models.schedule import ScheduleStatus
from webapp.services.accounts.disabling import HELD_OWNER_DISABLED
from webapp.services.jobs import actions
from webapp.services.jobs import change_marks
from webapp.services.jobs.job_timing import JobTiming
from webapp.services.scheduling import recurrence
from webapp.services.scheduling import timing
from webapp.timeutil import as_utc

log = logging.getLogger(__name__)

ONE_MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class MaterializeSettings:
    """What making occurrences needs from the config."""

    sender: str = "scheduler@localhost"
    max_attempts: int = 5
    # An occurrence later than this when planned was missed: the catch-up rule decides.
    misfire_seconds: float = 60.0
    # At most this many occurrences per schedule per pass (catch-up `all` after a long downtime).
    batch: int = 100

    @classmethod
    def from_config(cls, config):
        return cls(
            sender=config["MAIL_DEFAULT_SENDER"],
            max_attempts=config["MAX_ATTEMPTS"],
            misfire_seconds=config["SCHEDULE_MISFIRE_SECONDS"],
        )


@dataclass
class Plan:
    """The outcome of planning one schedule at `now`."""

    times: list = field(default_factory=list)  # occurrences to make, in order
    cursor_at: datetime = None  # the last occurrence considered (made or skipped)
    next_made_at: datetime = None  # the future occurrence made, if any
    due_at: datetime = None  # when to plan again; None: finished
    more: bool = False  # a batch was cut short: plan again at once


def occurrence_job_id(schedule_id, version, occurrence_at):
    """The `_id` of an occurrence's job: 4 bytes of the occurrence time (as any ObjectId starts
    with a time) and 8 bytes of a hash of the schedule, its version and the occurrence."""
    seconds = int(as_utc(occurrence_at).timestamp())
    key = f"{schedule_id}:{version}:{as_utc(occurrence_at).isoformat()}".encode()
    return ObjectId(seconds.to_bytes(4, "big") + hashlib.blake2b(key, digest_size=8).digest())


def _zone(doc):
    return timing.zone_or_utc(doc.get("timezone"))


def _latest_missed(doc, after, before):
    """The last occurrence in (after, before), looking back a day, then 8, 64... days at a time."""
    span = timedelta(days=1)
    while True:
        start = max(after, before - span)
        found = None
        for moment in recurrence.occurrences_after(doc["cron"], _zone(doc), start):
            if moment >= before:
                break
            found = moment
        if found is not None or start == after:
            return found
        span *= 8


def plan_occurrences(doc, now, settings):
    """Which occurrences of the schedule `doc` (a raw document) to make at `now`. Pure."""
    cursor = as_utc(doc["cursor_at"])
    until = as_utc(doc.get("until"))
    remaining = max(0, doc["max_runs"] - doc["runs"]) if doc.get("max_runs") else None
    late_before = now - timedelta(seconds=settings.misfire_seconds)
    catch_up = doc.get("catch_up") or CatchUp.LATEST
    plan = Plan(cursor_at=cursor)
    start = cursor
    missed = None
    if catch_up != CatchUp.ALL and cursor < late_before - ONE_MS:
        if catch_up == CatchUp.LATEST:
            missed = _latest_missed(doc, cursor, late_before if until is None else min(late_before, until + ONE_MS))
        start = late_before - ONE_MS  # the late ones are skipped (or `missed` stands for them)
    recent = []
    for moment in recurrence.occurrences_after(doc["cron"], _zone(doc), start):
        if until is not None and moment > until:
            break
        if moment > now:
            recent.append(moment)
            plan.next_made_at = moment
            break
        recent.append(moment)
        if len(recent) >= settings.batch:
            plan.more = True
            break
    if missed is not None and not any(moment <= now for moment in recent):
        recent.insert(0, missed)  # only when no occurrence since supersedes it
    if remaining is not None and len(recent) >= remaining:  # the last runs: nothing after them
        recent, plan.more = recent[:remaining], False
        plan.next_made_at = recent[-1] if recent and recent[-1] > now else None
        remaining = 0
    plan.times = recent
    if recent:
        plan.cursor_at = recent[-1]
    elif start > cursor:
        plan.cursor_at = start
    if plan.more:
        plan.due_at = now
    elif plan.next_made_at is not None and remaining != 0:
        plan.due_at = plan.next_made_at
    return plan


def _expiry(doc, occurrence, effective, settings):
    """The `expires_at` that makes an occurrence's job follow the catch-up rule (None for `all`)."""
    grace = timedelta(seconds=settings.misfire_seconds)
    catch_up = doc.get("catch_up") or CatchUp.LATEST
    if catch_up == CatchUp.NONE:
        return effective + grace
    if catch_up == CatchUp.LATEST:
        following = recurrence.occurrence_after(doc["cron"], _zone(doc), occurrence)
        if following is None or (doc.get("until") and following > as_utc(doc["until"])):
            return None  # the last one: nothing supersedes it
        return _effective(doc, following) + grace
    return None


def _effective(doc, moment):
    try:
        windows = timing.windows_from(doc.get("windows"))
    except ValueError:
        windows = ()
    return timing.effective_send_at(moment, windows, _zone(doc))


def _make(doc, times, now, settings):
    """Insert the jobs of `times` for schedule `doc`; [(job_id, effective)] of those this call made.

    An owner disabled by an admin gets held occurrences (webapp.services.accounts.disabling): they
    wait, PENDING, and go when the account is enabled, or expire by the catch-up rule first.
    """
    made = []
    owner = User._get_collection().find_one({"_id": doc["owner_id"]}, {"disabled": 1})
    held = HELD_OWNER_DISABLED if owner and owner.get("disabled") else None
    for occurrence in times:
        occurrence = as_utc(occurrence)
        effective = _effective(doc, occurrence)
        windows = [dict(window) for window in doc.get("windows") or []]
        timing_ = JobTiming(
            occurrence, doc.get("timezone") or "UTC", windows, _expiry(doc, occurrence, effective, settings), effective
        )
        job_id = occurrence_job_id(doc["_id"], doc["version"], occurrence)
        job = actions.new_job(
            job_id,
            doc["owner_id"],
            doc["to"],
            doc["subject"],
            doc["body"],
            timing_,
            settings.sender,
            settings.max_attempts,
            now,
        )
        job.schedule_id, job.occurrence_at, job.held = doc["_id"], occurrence, held
        try:
            Job._get_collection().insert_one(job.to_mongo())
        except DuplicateKeyError:
            continue  # made already, by another pass: never twice
        made.append((job_id, effective))
    if made:  # the owner's tables show the new jobs: their change marks move on
        change_marks.bump([doc["owner_id"]])
    return made


def _cancel(doc, made, now):
    """Cancel jobs this pass made for a schedule that was paused, changed or deleted meanwhile."""
    collection = Job._get_collection()
    for job_id, _ in made:
        collection.update_one(
            {"_id": job_id, "status": JobStatus.PENDING}, {"$set": {"status": JobStatus.CANCELLED, "updated_at": now}}
        )
    if made:
        change_marks.bump([doc["owner_id"]])


def set_or_unset(fields):
    """An update that sets the fields with a value and removes those that are None.

    A field that is missing, rather than null, keeps one kind of value (dates), which FerretDB's
    pushdown needs to answer a range such as `due_at <= now` from its index.
    """
    update = {"$set": {name: value for name, value in fields.items() if value is not None}}
    unset = {name: "" for name, value in fields.items() if value is None}
    if unset:
        update["$unset"] = unset
    return update


def _carry_out(doc, now, settings):
    """Make the stored plan's jobs, then mark it done; cancel them if the schedule moved on."""
    made = _make(doc, doc["planned"], now, settings)
    collection = Schedule._get_collection()
    done = collection.update_one(
        {"_id": doc["_id"], "version": doc["version"], "plan_id": doc["plan_id"]},
        set_or_unset({"planned": [], "due_at": doc.get("due_after_plan")}),
    )
    if done.matched_count == 0:  # a newer plan, or a person changed the schedule (a new version)
        current = collection.find_one({"_id": doc["_id"]}, {"version": 1})
        if current is None or current["version"] != doc["version"]:
            _cancel(doc, made, now)
            return []
    return made


def materialize(doc, now, settings):
    """One pass over one schedule (a raw document): plan if due, carry out a stored plan.

    Returns [(job_id, effective_send_at)] of the jobs this pass inserted, for the caller to queue.
    """
    if doc.get("planned"):
        return _carry_out(doc, now, settings)
    if doc.get("status") != ScheduleStatus.ACTIVE or doc.get("due_at") is None or as_utc(doc["due_at"]) > now:
        return []
    plan = plan_occurrences(doc, now, settings)
    update = {
        "plan_id": uuid.uuid4().hex,
        "cursor_at": plan.cursor_at,
        "runs": doc["runs"] + len(plan.times),
        "planned": plan.times,
        "due_after_plan": plan.due_at,
        "updated_at": now,
        "due_at": now if plan.times else plan.due_at,
    }
    if plan.next_made_at is not None:
        update["next_made_at"] = plan.next_made_at
    if plan.due_at is None:
        update["status"] = ScheduleStatus.FINISHED
    won = Schedule._get_collection().find_one_and_update(
        {
            "_id": doc["_id"],
            "version": doc["version"],
            "plan_id": doc.get("plan_id"),
            "planned": [],
            "status": ScheduleStatus.ACTIVE,
        },
        set_or_unset(update),
        return_document=True,
    )
    if won is None or not plan.times:
        return []
    return _carry_out(won, now, settings)


def materialize_due(now, settings, limit=200):
    """A pass over every schedule that is due (the sweep, the maintenance thread); the jobs made."""
    made = []
    cursor = Schedule._get_collection().find({"due_at": {"$lte": now}}).sort("due_at", 1).limit(limit)
    for doc in cursor:
        try:
            made.extend(materialize(doc, now, settings))
        except ValueError as exc:  # a stored cron or zone no version of the API accepts
            log.warning("schedule %s cannot be materialized: %s", doc["_id"], exc)
    return made


def materialize_schedule(schedule_id, now, settings):
    """A pass over one schedule, right after it was created or changed; the jobs made."""
    doc = Schedule._get_collection().find_one({"_id": schedule_id})
    return materialize(doc, now, settings) if doc else []
