"""A job's timing from what was asked: zone, send time, windows, expiry, effective send time.

The one place that reads `send_at` / `expires_at` (a wall time in the job's zone, or an instant
when it carries an offset), applies the account's defaults and checks the ranges, for the API's
create and reschedule and for the pages, so they cannot disagree. Errors are ValidationFailed
naming each field.
"""

from dataclasses import dataclass
from datetime import UTC
from datetime import datetime

from webapp.services.errors import ValidationFailed
from webapp.services.scheduling import timing
from webapp.services.scheduling.inputs import windows_as_dicts
from webapp.services.validation import MAX_AHEAD
from webapp.services.validation import PAST_TOLERANCE
from webapp.services.validation import TOO_EARLY
from webapp.services.validation import TOO_LATE
from webapp.services.validation import JobInput
from webapp.services.validation import JobTimingInput
from webapp.services.validation import parse
from webapp.timeutil import OutOfRange
from webapp.timeutil import as_utc


@dataclass(frozen=True)
class JobTiming:
    """What is stored: `send_at` (UTC), `timezone`, `windows` (dicts), `expires_at`, and the
    effective send time (`next_attempt_at`)."""

    send_at: datetime
    timezone: str
    windows: list
    expires_at: datetime | None
    effective_send_at: datetime


def account_zone(user):
    """The account's zone when it is a real one (old accounts may hold anything), else UTC."""
    name = getattr(user, "timezone", None)
    return name if timing.is_known_zone(name) else "UTC"


def account_windows(user):
    """The account's default windows as dicts ([] = any time)."""
    return [
        window.as_dict() if hasattr(window, "as_dict") else dict(window)
        for window in (getattr(user, "windows", None) or [])
    ]


def to_ms(moment):
    """BSON keeps milliseconds: round so that what is stored and what is returned agree."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def read_moment(value, tz):
    """A parsed `send_at`-like value → aware UTC: with an offset, the offset wins; without, a wall
    time in `tz` by the DST rule of webapp.services.scheduling.timing. OutOfRange near years 1 and 9999."""
    try:
        if value.tzinfo is not None and value.utcoffset() is not None:
            return to_ms(value.astimezone(UTC))
        return to_ms(timing.wall_to_utc(value, tz))
    except OverflowError:
        raise OutOfRange(value.isoformat(), too_late=value.year > 1) from None


def check_range(moment, now, errors, name):
    """`moment` must be from a minute in the past to 10 years ahead; the error goes under `name`."""
    if moment < now - PAST_TOLERANCE:
        errors[name] = TOO_EARLY
    elif moment > now + MAX_AHEAD:
        errors[name] = TOO_LATE


def read_or_error(value, tz, now, errors, name):
    """`read_moment` and `check_range`, the error (if any) put in `errors` under `name`; None then."""
    try:
        moment = read_moment(value, tz)
    except OutOfRange as exc:
        errors[name] = TOO_LATE if exc.too_late else TOO_EARLY
        return None
    check_range(moment, now, errors, name)
    return moment


def check_expiry(expires_at, send_at, effective, errors, tz_name):
    """`expires_at` must come after the send time and after the first window opening."""
    if expires_at is None or "expires_at" in errors:
        return
    if expires_at <= send_at:
        errors["expires_at"] = "must be after send_at"
    elif expires_at <= effective:
        errors["expires_at"] = (
            f"is before the job can first go out ({effective.isoformat()} UTC, the next "
            f"opening of its windows in {tz_name}): it would expire unsent"
        )


def resolve_new(data, user, now):
    """The timing of a job to create from a validated JobInput (or anything with its fields)."""
    zone_name = data.timezone or account_zone(user)
    tz = timing.zone(zone_name)
    windows = windows_as_dicts(data.windows) if data.windows is not None else account_windows(user)
    errors: dict = {}
    send_at = to_ms(now)
    if data.send_at is not None:
        send_at = read_or_error(data.send_at, tz, now, errors, "send_at") or send_at
    expires_at = read_or_error(data.expires_at, tz, now, errors, "expires_at") if data.expires_at is not None else None
    effective = timing.effective_send_at(send_at, timing.windows_from(windows), tz)
    check_expiry(expires_at, send_at, effective, errors, zone_name)
    if errors:
        raise ValidationFailed("Some fields are not valid.", errors)
    return JobTiming(send_at, zone_name, windows, expires_at, effective)


def parse_new_job(data, user, now):
    """Validate a job to create (a dict from JSON or a form): (JobInput, JobTiming).

    Every field's error at once: the timing is read even when another field is wrong, so a bad
    recipient and a send time in the past are both reported.
    """
    errors: dict = {}
    job_input = None
    try:
        job_input = parse(JobInput, data)
    except ValidationFailed as exc:
        if not isinstance(data, dict):
            raise
        errors.update(exc.fields)
    timing_fields = {name: data[name] for name in JobTimingInput.model_fields if name in data}
    try:
        found = resolve_new(job_input or parse(JobTimingInput, timing_fields), user, now)
    except ValidationFailed as exc:
        errors.update({name: message for name, message in exc.fields.items() if name not in errors})
    if errors:
        raise ValidationFailed("Some fields are not valid.", errors)
    return job_input, found


def resolve_change(data, job, user, now):
    """The timing of a PENDING job after a reschedule (`data`: a validated JobPatch).

    Fields not given keep their value; `expires_at: null` removes the expiry. The effective send
    time is worked out again when `send_at`, `timezone` or `windows` change: from the new send
    time, or from the current one (the retry time, for a job that has been tried already).
    """
    given = data.model_fields_set
    zone_name = data.timezone if "timezone" in given and data.timezone else (job.timezone or account_zone(user))
    tz = timing.zone(zone_name)
    stored_windows = [window.as_dict() for window in job.windows or []]
    windows = windows_as_dicts(data.windows) if "windows" in given and data.windows is not None else stored_windows
    errors: dict = {}
    send_at = as_utc(job.send_at)
    if "send_at" in given:
        if data.send_at is None:
            errors["send_at"] = "cannot be removed; give a new time"
        else:
            send_at = read_or_error(data.send_at, tz, now, errors, "send_at") or send_at
    expires_at = as_utc(job.expires_at)
    if "expires_at" in given:
        expires_at = None if data.expires_at is None else read_or_error(data.expires_at, tz, now, errors, "expires_at")
    effective = as_utc(job.next_attempt_at)
    if given & {"send_at", "timezone", "windows"}:
        base = send_at if "send_at" in given or not job.attempts else effective
        effective = timing.effective_send_at(base, timing.windows_from(windows), tz)
    if given & {"send_at", "timezone", "windows", "expires_at"}:
        check_expiry(expires_at, send_at, effective, errors, zone_name)
    if errors:
        raise ValidationFailed("Some fields are not valid.", errors)
    return JobTiming(send_at, zone_name, windows, expires_at, effective)
