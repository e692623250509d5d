"""When an email may go out: time zones, wall-clock times, availability windows. Pure functions.

One rule for every wall-clock time the API, the pages and the schedules read, the one RFC 5545
gives (and `zoneinfo` applies with fold=0):

- a wall time that does not exist (the clocks spring forward over it) is read with the offset in
  force before the gap, so it moves forward by the gap: 02:30 in Berlin on the spring day is
  03:30 CEST;
- a wall time that occurs twice (the clocks fall back) is its first occurrence: 02:30 in Berlin
  on the autumn day is 02:30 CEST, not 02:30 CET an hour later.

A window is `{"days": [...], "start": "HH:MM", "end": "HH:MM"}` in the job's zone: `days` name the
days the window opens on (mon..sun), `end` is exclusive, except that 23:59 means to the end of
the day, and a `start` after `end` runs past midnight into the next day (fri 22:00-02:00 ends
on Saturday at 02:00). Both ends are wall times read by the rule above, so a window keeps its
wall-clock hours across DST changes.
"""

import re
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import time
from datetime import timedelta
from zoneinfo import ZoneInfo
from zoneinfo import available_timezones

from webapp.timeutil import as_utc

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_WINDOWS = 20
_KNOWN_ZONES = frozenset(available_timezones()) | {"UTC"}
_HHMM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
# How far ahead the next opening is looked for: every window opens at least once a week, and a
# window whose hours the clocks skip on one day (02:00-03:00 on the spring day) opens the next.
_SEARCH_DAYS = 15
END_OF_DAY = "23:59"


class UnknownZone(ValueError):
    """Not an IANA time zone name we know."""


def available_zones():
    """Every zone name we know."""
    return _KNOWN_ZONES


def is_known_zone(name):
    """True if `name` is an IANA zone name (paths and odd strings never reach zoneinfo)."""
    return isinstance(name, str) and name in _KNOWN_ZONES


def zone(name):
    """The ZoneInfo for an IANA name; UnknownZone otherwise."""
    if not is_known_zone(name):
        raise UnknownZone(f"{name!r} is not a known IANA time zone")
    return ZoneInfo(name)


def zone_or_utc(name):
    """The zone for `name`, or UTC for a name that is missing or unknown (old documents)."""
    return ZoneInfo(name) if is_known_zone(name) else UTC


def wall_to_utc(wall, tz):
    """A naive wall-clock time in `tz` → aware UTC, by the module's DST rule (fold=0).

    Raises OverflowError within a day of the ends of the datetime range.
    """
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def wall_of(moment, tz):
    """The naive wall-clock time `tz` shows at `moment`."""
    return as_utc(moment).astimezone(tz).replace(tzinfo=None)


def wall_time_note(wall, tz):
    """Why a wall time was read as another one, for people; None when it exists exactly once.

    "skipped" when the clocks jump over it (it was moved forward by the gap), "repeated" when it
    occurs twice (the first occurrence was taken).
    """
    moment = wall_to_utc(wall, tz)
    if wall_of(moment, tz) != wall:
        return "skipped"
    later = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    return "repeated" if later != moment else None


@dataclass(frozen=True)
class Window:
    """An availability window: on each of `days` (0 = Monday), from `start` to `end` (wall times)."""

    days: frozenset
    start: time
    end: time

    @property
    def wraps(self):
        """True when the window runs past midnight into the next day."""
        return self.start > self.end

    def as_dict(self):
        """The API's shape (days in week order)."""
        return {
            "days": [DAYS[day] for day in sorted(self.days)],
            "start": self.start.strftime("%H:%M"),
            "end": self.end.strftime("%H:%M"),
        }


def parse_hhmm(text):
    """'HH:MM' from 00:00 to 23:59 → time; ValueError otherwise."""
    match = _HHMM.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise ValueError("must be a time HH:MM from 00:00 to 23:59")
    return time(int(match.group(1)), int(match.group(2)))


def parse_days(days):
    """A non-empty list of day names (mon..sun) → frozenset of weekday numbers; ValueError otherwise."""
    if not isinstance(days, list | tuple) or not days:
        raise ValueError(f"must be a non-empty list of days from {', '.join(DAYS)}")
    unknown = [day for day in days if day not in DAYS]
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not a day: use {', '.join(DAYS)}")
    return frozenset(DAYS.index(day) for day in days)


def window_from(value):
    """A window from its API shape (a mapping, or an object with the same attributes)."""
    get = value.get if isinstance(value, dict) else lambda name: getattr(value, name, None)
    start, end = parse_hhmm(get("start")), parse_hhmm(get("end"))
    if start == end:
        raise ValueError("start and end must differ (for any time of day, give no windows)")
    return Window(parse_days(list(get("days") or [])), start, end)


def windows_text(values):
    """Windows in the API's shape as people write them: 'mon,tue 09:00-17:00; sat 10:00-12:00'."""
    return "; ".join(f"{','.join(value['days'])} {value['start']}-{value['end']}" for value in values or [])


def windows_from(values):
    """Windows from their stored or API shape; None or [] means any time (an empty tuple)."""
    return tuple(window_from(value) for value in values or ())


def _spans_on(day, windows, tz):
    """(opens, closes) in UTC for every window that opens on local date `day`."""
    for window in windows:
        if day.weekday() not in window.days:
            continue
        opens = wall_to_utc(datetime.combine(day, window.start), tz)
        if window.end.strftime("%H:%M") == END_OF_DAY:
            closes = wall_to_utc(datetime.combine(day + timedelta(days=1), time(0)), tz)
        else:
            closes = wall_to_utc(datetime.combine(day + timedelta(days=1 if window.wraps else 0), window.end), tz)
        if closes > opens:  # a window inside the hour the clocks skip is empty that day
            yield opens, closes


def next_opening(moment, windows, tz):
    """The earliest instant at or after `moment` (UTC) inside one of `windows` (read in `tz`).

    No windows means any time: `moment` itself.
    """
    moment = as_utc(moment)
    if not windows:
        return moment
    today = wall_of(moment, tz).date()
    best = None
    for offset in range(-1, _SEARCH_DAYS):  # from yesterday: its window may run past midnight
        day = today + timedelta(days=offset)
        if best is not None and wall_to_utc(datetime.combine(day, time(0)), tz) > best:
            break  # every window of this day and the next opens later than one found
        for opens, closes in _spans_on(day, windows, tz):
            if opens <= moment < closes:
                return moment
            if opens > moment and (best is None or opens < best):
                best = opens
    if best is None:
        raise ValueError("no window opens in the next two weeks")
    return best


def in_window(moment, windows, tz):
    """True if `moment` is inside one of `windows` (or there are none)."""
    return next_opening(moment, windows, tz) == as_utc(moment)


def effective_send_at(send_at, windows, tz):
    """When a job due at `send_at` actually goes out: `send_at`, or the next window opening."""
    return next_opening(send_at, windows, tz)
