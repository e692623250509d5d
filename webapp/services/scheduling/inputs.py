"""The scheduling fields of the API's inputs: a zone, wall-or-offset times, windows, cron.

Shape checks only, shared by jobs, schedules and accounts (webapp.services.validation and
webapp.services.recurring.inputs); times that need a zone are read in webapp.services.jobs.job_timing.
"""

from datetime import datetime

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import field_validator

from webapp.services.scheduling import timing

ZONE_MESSAGE = "must be an IANA time zone name, e.g. Europe/Berlin or America/New_York"
WHEN_MESSAGE = (
    "must be ISO-8601: a wall time read in `timezone` (2031-07-01T09:00:00) "
    "or with an offset or Z (2031-07-01T09:00:00+02:00)"
)


def omitted_means_unchanged(schema):
    """JSON Schema hook for PATCH-like inputs: a field that may be omitted but not null has no
    `"default": null` in the document (its type does not allow null)."""
    for prop in schema.get("properties", {}).values():
        nullable = prop.get("type") == "null" or any(part.get("type") == "null" for part in prop.get("anyOf", []))
        if "default" in prop and prop["default"] is None and not nullable:
            del prop["default"]


def known_zone(value):
    """Pydantic check: an IANA zone name."""
    if value is not None and not timing.is_known_zone(value):
        raise ValueError(ZONE_MESSAGE)
    return value


def wall_or_instant(value):
    """Pydantic check: ISO-8601 with an offset (an instant) or without (a wall time); a datetime."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(WHEN_MESSAGE) from None


# How the OpenAPI document shows a window (the validators below decide).
WINDOW_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["days", "start", "end"],
    "properties": {
        "days": {"type": "array", "minItems": 1, "items": {"enum": list(timing.DAYS)}},
        "start": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"},
        "end": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"},
    },
    "examples": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}],
    "description": "In the owner's zone; `end` exclusive (23:59: to the end of the day); `start` after `end` "
    "runs past midnight; `start` equal to `end` is refused.",
}


class WindowInput(BaseModel):
    """`{"days": ["mon", ...], "start": "HH:MM", "end": "HH:MM"}`; start after end runs past midnight."""

    model_config = ConfigDict(extra="forbid")

    days: list[str]
    start: str
    end: str

    @field_validator("days")
    @classmethod
    def known_days(cls, value):
        return [timing.DAYS[day] for day in sorted(timing.parse_days(value))]

    @field_validator("start", "end")
    @classmethod
    def hhmm(cls, value):
        timing.parse_hhmm(value)
        return value

    @field_validator("end")
    @classmethod
    def not_empty(cls, value, info):
        if info.data.get("start") == value:
            raise ValueError("must differ from start (for any time of day, give no windows)")
        return value


def window_list(value):
    """Pydantic check on a list of windows: at most MAX_WINDOWS."""
    if value is not None and len(value) > timing.MAX_WINDOWS:
        raise ValueError(f"at most {timing.MAX_WINDOWS} windows")
    return value


def windows_as_dicts(windows):
    """Validated WindowInputs (or None) → the stored shape (or None)."""
    return None if windows is None else [window.model_dump() for window in windows]
