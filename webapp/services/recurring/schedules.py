"""Recurring schedules for users and admins: create, list, read, change, pause, resume, delete.

The occurrences themselves are made by webapp.services.recurring.occurrences; every change here bumps
the schedule's `version` (so a plan in flight for the old one is recognised and undone),
cancels its occurrences that are still PENDING (not yet running) and lets the next pass plan
afresh from now: occurrences missed while a schedule was paused are skipped, not caught up.
"""

from datetime import timedelta

from webapp.models import Job
from webapp.models import JobStatus
from webapp.models import Schedule
from webapp.models import Window
from webapp.models.schedule import ScheduleStatus
from webapp.services.accounts.users import parse_object_id
from webapp.services.errors import Conflict
from webapp.services.errors import NotFound
from webapp.services.errors import ValidationFailed
from webapp.services.jobs import change_marks
from webapp.services.jobs import job_timing
from webapp.services.recurring.occurrences import set_or_unset
from webapp.services.scheduling import recurrence
from webapp.services.scheduling import timing
from webapp.services.scheduling.inputs import windows_as_dicts
from webapp.timeutil import as_utc
from webapp.timeutil import utcnow

NEXT_RUNS = 5
ONE_MS = timedelta(milliseconds=1)
CONTENT_FIELDS = ("to", "subject", "body", "cron", "catch_up", "max_runs")


def _bounds(data, given, tz, now, errors, current=None):
    """`starts_at` and `until` read in the zone (wall time or offset), each checked like send_at."""
    values = {}
    for name in ("starts_at", "until"):
        if name in given:
            raw = getattr(data, name)
            values[name] = None if raw is None else job_timing.read_or_error(raw, tz, now, errors, name)
        else:
            values[name] = as_utc(getattr(current, name, None)) if current else None
    if values["until"] is not None and "until" not in errors:
        floor = max(values["starts_at"] or now, now)
        if values["until"] <= floor:
            errors["until"] = "must be after starts_at and after now"
    return values["starts_at"], values["until"]


def _first_run_check(cron, tz, starts_at, until, now, errors):
    """A schedule must have at least one run to come: 422 on `cron` or `until` otherwise."""
    if errors:
        return
    first = recurrence.occurrence_after(cron, tz, max(now, (starts_at or now) - ONE_MS))
    if first is None:
        errors["cron"] = "never fires in the next 50 years"
    elif until is not None and first > until:
        errors["until"] = f"is before the first run ({first.isoformat()} UTC)"


def create_schedule(user, data, now=None):
    """Store an active schedule from a validated ScheduleInput; the materializer makes its runs."""
    now = now or utcnow()
    zone_name = data.timezone or job_timing.account_zone(user)
    tz = timing.zone(zone_name)
    windows = windows_as_dicts(data.windows) if data.windows is not None else job_timing.account_windows(user)
    errors: dict = {}
    starts_at, until = _bounds(data, data.model_fields_set, tz, now, errors)
    _first_run_check(data.cron, tz, starts_at, until, now, errors)
    if errors:
        raise ValidationFailed("Some fields are not valid.", errors)
    schedule = Schedule(
        owner_id=user.id,
        to=list(data.to),
        subject=data.subject,
        body=data.body,
        cron=data.cron,
        timezone=zone_name,
        windows=[Window(**window) for window in windows],
        starts_at=starts_at,
        until=until,
        max_runs=data.max_runs,
        catch_up=data.catch_up,
        cursor_at=max(now, (starts_at or now) - ONE_MS),
        planned=[],
        due_at=now,
        created_at=now,
        updated_at=now,
    )
    schedule.save(force_insert=True)
    return schedule


def get_schedule(schedule_id, owner_id=None):
    """Load a schedule; another user's is reported as missing."""
    filters = {"id": parse_object_id(schedule_id, "schedule")}
    if owner_id is not None:
        filters["owner_id"] = owner_id
    schedule = Schedule.objects(**filters).first()
    if schedule is None:
        raise NotFound("No such schedule.")
    return schedule


def list_schedules(owner_id=None, page=1, per_page=20):
    """One page of schedules, newest first, and the total; `owner_id` None means everyone's."""
    query = Schedule.objects(**({"owner_id": owner_id} if owner_id is not None else {})).order_by("-created_at", "-id")
    return list(query.skip((page - 1) * per_page).limit(per_page)), query.count()


def cancel_pending_occurrences(schedule_id, now):
    """CANCELLED for the schedule's occurrences not yet running; how many.

    Found by a read (the (schedule_id, status) index; usually one: the next occurrence), then
    cancelled one by one by `_id`, each still only if PENDING: on FerretDB a write command holds
    the server's write lock for its whole scan, and an update_many on these fields scans. The
    owner's tables show them cancelled: their change marks move on (webapp.services.jobs.change_marks).
    """
    collection = Job._get_collection()
    pending = list(collection.find({"schedule_id": schedule_id, "status": JobStatus.PENDING}, {"owner_id": 1}))
    cancelled = cancel_jobs([job["_id"] for job in pending], now)
    if cancelled:
        change_marks.bump({job.get("owner_id") for job in pending})
    return cancelled


def cancel_jobs(job_ids, now):
    """PENDING → CANCELLED for each of `job_ids` (by `_id`, each conditional); how many."""
    collection = Job._get_collection()
    return sum(
        collection.update_one(
            {"_id": job_id, "status": JobStatus.PENDING}, {"$set": {"status": JobStatus.CANCELLED, "updated_at": now}}
        ).modified_count
        for job_id in job_ids
    )


def _replan(schedule, fields, now):
    """One write conditional on the version seen: the new fields, a new version, planning afresh."""
    active = fields.get("status", schedule.status) == ScheduleStatus.ACTIVE
    starts_at = fields.get("starts_at", schedule.starts_at)
    fields.update(
        version=schedule.version + 1,
        planned=[],
        plan_id=None,
        next_made_at=None,
        updated_at=now,
        cursor_at=max(now, as_utc(starts_at) - ONE_MS) if starts_at else now,
        due_at=now if active else None,
    )
    result = Schedule._get_collection().update_one(
        {"_id": schedule.id, "version": schedule.version}, set_or_unset(fields)
    )
    if result.matched_count == 0:
        raise Conflict("The schedule was changed at the same moment; load it again and retry.")
    cancel_pending_occurrences(schedule.id, now)
    schedule.reload()
    return schedule


def update_schedule(schedule_id, owner_id, change, user, now=None):
    """Change a schedule (a validated SchedulePatch): content, cron, zone, windows, bounds, status."""
    schedule = get_schedule(schedule_id, owner_id)
    given = change.model_fields_set
    if not given:
        raise ValidationFailed("Nothing to change.", {"body": "give at least one field to change"})
    now = now or utcnow()
    zone_name = change.timezone if "timezone" in given else schedule.timezone
    tz = timing.zone(zone_name)
    errors: dict = {}
    starts_at, until = _bounds(change, given, tz, now, errors, current=schedule)
    cron = change.cron if "cron" in given else schedule.cron
    _first_run_check(cron, tz, starts_at, until, now, errors)
    if errors:
        raise ValidationFailed("Some fields are not valid.", errors)
    fields = {name: getattr(change, name) for name in CONTENT_FIELDS if name in given}
    if "to" in fields:
        fields["to"] = list(fields["to"])
    fields.update(timezone=zone_name, starts_at=starts_at, until=until)
    if "windows" in given:
        fields["windows"] = windows_as_dicts(change.windows)
    if "status" in given:
        fields["status"] = change.status
    elif schedule.status == ScheduleStatus.FINISHED:
        fields["status"] = ScheduleStatus.ACTIVE  # new bounds may give it runs again; the plan says
    return _replan(schedule, fields, now)


def set_status(schedule_id, owner_id, status, now=None):
    """Pause (no occurrence is made, the pending ones are cancelled) or resume (from now on)."""
    schedule = get_schedule(schedule_id, owner_id)
    if schedule.status == status:
        return schedule
    if schedule.status == ScheduleStatus.FINISHED and status == ScheduleStatus.PAUSED:
        raise Conflict("This schedule is finished; there is nothing to pause.")
    return _replan(schedule, {"status": status}, now or utcnow())


def delete_schedule(schedule_id, owner_id, now=None):
    """Delete a schedule and cancel its occurrences not yet running; those sent or running stay."""
    schedule = get_schedule(schedule_id, owner_id)
    Schedule._get_collection().delete_one({"_id": schedule.id})
    return cancel_pending_occurrences(schedule.id, now or utcnow())


def upcoming_runs(cron, zone_name, after, until=None, remaining=None, count=NEXT_RUNS):
    """The next `count` runs (UTC) of a cron in a zone after `after`, within `until` and `remaining`."""
    if remaining is not None:
        count = max(0, min(count, remaining))
    if not count:
        return []
    return recurrence.next_runs(cron, timing.zone_or_utc(zone_name), after, count, until)


def next_runs(schedule, now=None, count=NEXT_RUNS):
    """The schedule's next runs (UTC): the occurrence already made, then the ones to come."""
    now = now or utcnow()
    made = as_utc(schedule.next_made_at)
    runs = [made] if made and made > now and schedule.status != ScheduleStatus.PAUSED else []
    if schedule.status != ScheduleStatus.ACTIVE:
        return runs
    remaining = schedule.max_runs - schedule.runs if schedule.max_runs else None
    after = max(as_utc(schedule.cursor_at), now, made or now)
    return runs + upcoming_runs(
        schedule.cron, schedule.timezone, after, as_utc(schedule.until), remaining, count - len(runs)
    )
