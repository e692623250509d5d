"""Time helpers: every datetime in this project is timezone-aware UTC.

pymongo returns naive datetimes unless the client is made with
`tz_aware=True`, and Huey reads a naive `eta` as local time; both bite, so we
never let a naive datetime through.
"""

from datetime import UTC
from datetime import datetime


def utcnow():
    """Now, aware, in UTC, truncated to milliseconds (what BSON stores)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def as_utc(value):
    """Return `value` as an aware UTC datetime; naive values are taken as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def isoformat_z(value):
    """ISO-8601 in UTC with a `Z`, millisecond precision, or None."""
    if value is None:
        return None
    return as_utc(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class OutOfRange(ValueError):
    """A wall-clock time that UTC cannot hold (within a day of year 1 or year 9999's end).

    `too_late` says which end it fell off.
    """

    def __init__(self, text, too_late):
        super().__init__(f"{text!r} is outside the range of dates")
        self.too_late = too_late


def to_utc(value):
    """An aware datetime in UTC; OutOfRange when that crosses year 1 or 9999."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise OutOfRange(value.isoformat(), too_late=value.year > 1) from None


def parse_iso8601(text):
    """Parse an ISO-8601 string that carries an offset or `Z`; raise ValueError otherwise."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("needs a time zone offset or Z")
    return to_utc(value)
