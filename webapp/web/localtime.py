"""People's local time: IANA zone names from the browser, local ↔ UTC.

Everything is stored in UTC (see webapp.timeutil); pages take and show times
in the viewer's zone, which the browser reports and the account keeps.
"""

from datetime import UTC
from datetime import datetime
from zoneinfo import ZoneInfo
from zoneinfo import ZoneInfoNotFoundError
from zoneinfo import available_timezones

from webapp.services.scheduling.timing import wall_to_utc
from webapp.timeutil import OutOfRange
from webapp.timeutil import as_utc

DEFAULT_ZONE = "UTC"
_KNOWN_ZONES = frozenset(available_timezones()) | {"UTC"}


def is_valid_zone(name):
    """True if `name` is an IANA zone we know (paths and odd strings never reach zoneinfo)."""
    return isinstance(name, str) and name in _KNOWN_ZONES


def zone(name):
    """The ZoneInfo for `name`, or UTC when the name is unknown (old accounts, bad data)."""
    if not is_valid_zone(name):
        return UTC
    try:
        return ZoneInfo(name)
    except ZoneInfoNotFoundError:
        return UTC


def read_local(text):
    """A `datetime-local` value (`2026-12-01T09:30[:ss]`) → naive datetime; ValueError for a person."""
    try:
        naive = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("must be a date and time, e.g. 2026-12-01 09:30") from None
    if naive.tzinfo is not None:
        raise ValueError("must be a local date and time without an offset")
    return naive


def local_to_utc(text, zone_name):
    """Read a `datetime-local` value in `zone_name`; return aware UTC.

    The API's DST rule (webapp.services.scheduling.timing): a time the clocks skip moves forward by the
    gap (02:30 → 03:30), a time that occurs twice is its first occurrence. Raises ValueError
    for a malformed value, OutOfRange near year 1 or 9999.
    """
    naive = read_local(text)
    try:
        return wall_to_utc(naive, zone(zone_name))
    except OverflowError:
        raise OutOfRange(text, too_late=naive.year > 1) from None


def _wall_clock(moment, with_seconds):
    # By hand, not strftime: %Y does not pad years before 1000 on every platform.
    text = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d} {moment.hour:02d}:{moment.minute:02d}"
    return f"{text}:{moment.second:02d}" if with_seconds else text


def format_local(value, zone_name, with_seconds=True):
    """`2026-12-01 09:30:05` in the viewer's zone, or an empty string for no value.

    Never raises for a stored value: a time that the viewer's zone would push
    past year 9999 or before year 1 (datetime.max seen from UTC+14, say) is
    shown in UTC and says so.
    """
    if value is None:
        return ""
    moment = as_utc(value)
    try:
        return _wall_clock(moment.astimezone(zone(zone_name)), with_seconds)
    except OverflowError:
        return _wall_clock(moment, with_seconds) + " UTC"
