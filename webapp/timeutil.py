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


def parse_iso8601(text):
    """Parse an ISO-8601 string that carries an offset or `Z`; raise ValueError otherwise."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("needs a time zone offset or Z")
    return value.astimezone(UTC)
