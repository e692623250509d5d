"""What the schedule form's times mean, shown live as they are typed: the send time as read in the
zone (and why, when the clocks skip or repeat it), when the windows let it go out, and the next
runs of a recurrence. The same services as the API, so the preview is what will happen."""

from datetime import timedelta

from webapp.pages.forms import form_zone
from webapp.pages.forms import input_errors
from webapp.pages.forms import parse_windows_text
from webapp.services.jobs import job_timing
from webapp.services.recurring import schedules
from webapp.services.scheduling import recurrence
from webapp.services.scheduling import timing
from webapp.timeutil import OutOfRange
from webapp.web.localtime import read_local

NOTES = {
    "skipped": "does not exist that day (the clocks skip it): it is read as",
    "repeated": "happens twice that day (the clocks go back): the first one is taken,",
}


def shown(moment, tz):
    """A UTC instant as the preview shows it: 'Mon 2027-03-29 03:30 CEST'."""
    return moment.astimezone(tz).strftime("%a %Y-%m-%d %H:%M %Z")


def _windows(values, user, errors):
    try:
        windows = parse_windows_text(values["windows"])
        windows = job_timing.account_windows(user) if windows is None else windows
        return timing.windows_from(windows)
    except ValueError as exc:
        errors["windows"] = str(exc)
        return ()


def _wall(text, tz, name, errors):
    """A datetime-local value → (instant, note), or (None, None) with the error noted."""
    if not text.strip():
        return None, None
    try:
        wall = read_local(text.strip())
        return job_timing.read_moment(wall, tz), timing.wall_time_note(wall, tz)
    except (ValueError, OverflowError) as exc:
        errors[name] = "is out of range" if isinstance(exc, OutOfRange | OverflowError) else str(exc)
        return None, None


def timing_preview(values, user, now):
    """A dict for templates/jobs/_preview.html: `zone`, `errors`, and `send` or `runs`."""
    zone_name = form_zone(values, job_timing.account_zone(user))
    preview = {"zone": zone_name, "errors": {}, "send": None, "runs": None}
    errors = preview["errors"]
    if not timing.is_known_zone(zone_name):
        errors["zone"] = "is not a time zone we know"
        return preview
    tz = timing.zone(zone_name)
    windows = _windows(values, user, errors)
    start, note = _wall(values["send_at"], tz, "send_at", errors)
    if values["cron"].strip():
        try:
            cron = recurrence.parse_cron(values["cron"].strip())
        except ValueError as exc:
            errors["cron"] = str(exc)
            return preview
        until, _ = _wall(values["until"], tz, "until", errors)
        after = max(now, (start or now) - timedelta(milliseconds=1))
        remaining = int(values["max_runs"]) if values["max_runs"].strip().isdigit() else None
        runs = schedules.upcoming_runs(cron, zone_name, after, until, remaining)
        preview["runs"] = [
            {"at": run, "shown": shown(run, tz), "goes_out": shown(timing.next_opening(run, windows, tz), tz)}
            for run in runs
        ]
        if not runs:
            errors["cron"] = "has no run " + ("before until" if until else "in the next 50 years")
        return preview
    send_at = start or now
    effective = timing.next_opening(send_at, windows, tz)
    preview["send"] = {
        "typed": values["send_at"].strip().replace("T", " "),
        "note": NOTES.get(note),
        "shown": shown(send_at, tz),
        "now": start is None,
        "goes_out": shown(effective, tz),
        "waits": effective != send_at,
    }
    expires_at, _ = _wall(values["expires_at"], tz, "expires_at", errors)
    if expires_at is not None and expires_at <= effective:
        errors["expires_at"] = "comes before it can go out: it would expire unsent"
    return preview


def preview_errors(preview):
    """The preview's errors by form input (the same names the form shows)."""
    return input_errors(preview["errors"])
