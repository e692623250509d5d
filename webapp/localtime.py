"""People's local time: IANA zone names from the browser, local ↔ UTC.

Everything is stored in UTC (see webapp.timeutil); pages take and show times
in the viewer's zone, which the browser reports and the account keeps.
"""

from datetime import UTC
from datetime import datetime
from zoneinfo import ZoneInfo
from zoneinfo import ZoneInfoNotFoundError
from zoneinfo import available_timezones

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


def local_to_utc(text, zone_name):
    """Read a `datetime-local` value (`2026-12-01T09:30[:ss]`) in `zone_name`; return aware UTC.

    Raises ValueError with a message for a person: a malformed value, or a
    wall-clock time that does not exist there (the hour skipped when clocks go
    forward). An ambiguous time (clocks go back) means its first occurrence.
    """
    try:
        naive = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("must be a date and time, e.g. 2026-12-01 09:30") from None
    if naive.tzinfo is not None:
        raise ValueError("must be a local date and time without an offset")
    tz = zone(zone_name)
    moment = naive.replace(tzinfo=tz)
    if moment.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive:
        raise ValueError(f"does not exist in {zone_name} (the clocks skip it)")
    return moment.astimezone(UTC)


def format_local(value, zone_name, with_seconds=True):
    """`2026-12-01 09:30:05` in the viewer's zone, or an empty string for no value."""
    if value is None:
        return ""
    pattern = "%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M"
    return as_utc(value).astimezone(zone(zone_name)).strftime(pattern)

