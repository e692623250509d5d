"""Input rules shared by the API and the forms, written with pydantic.

Each `parse_*` returns clean values or raises `ValidationFailed` whose
`fields` map a field name to a message a person can act on.
"""

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import EmailStr
from pydantic import Field
from pydantic import StrictStr
from pydantic import ValidationError
from pydantic import field_validator

from webapp.errors import ValidationFailed
from webapp.services.addresses import MAX_RECIPIENT_CHARS
from webapp.services.addresses import parse_recipient
from webapp.services.addresses import unique_mailboxes
from webapp.services.timing_input import WindowInput
from webapp.services.timing_input import known_zone
from webapp.services.timing_input import wall_or_instant
from webapp.services.timing_input import window_list
from webapp.timeutil import utcnow

MAX_RECIPIENTS = 50
MAX_SUBJECT_CHARS = 998  # RFC 5322's line limit
MAX_BODY_BYTES = 100 * 1024
MIN_PASSWORD_CHARS = 8
# 100,000 pages of 100 is ten million rows: deeper than any table is read page by page.
MAX_PAGE = 100_000
# The range of send_at, measured from now: a small grace for clock skew and slow
# typing (older is a mistake), and ten years ahead (later is a typo, and years
# near 9999 break date arithmetic and display in some time zones).
PAST_TOLERANCE = timedelta(minutes=1)
MAX_AHEAD = timedelta(days=3653)
TOO_EARLY = "is more than a minute in the past"
TOO_LATE = "is more than 10 years ahead"
# Control characters (C0 but TAB, DEL, C1) and the Unicode line and paragraph
# separators: in a one-line field they would end or corrupt a mail header.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def one_line_text(value):
    """Refuse what a header line cannot carry: control characters (TAB is fine)."""
    control = _CONTROL.search(value)
    if control:
        kind = "line breaks" if control.group() in "\r\n" else "control characters"
        raise ValueError(f"must be a single line without {kind} (found U+{ord(control.group()):04X})")
    return value


def recipient(value):
    """One recipient, checked and written back in its stored form (see webapp.services.addresses)."""
    one_line_text(value)
    parsed = parse_recipient(value)
    if len(str(parsed)) > MAX_RECIPIENT_CHARS:
        raise ValueError(f"must be at most {MAX_RECIPIENT_CHARS} characters")
    return parsed


def check_send_at(moment, now=None):
    """Raise ValueError unless `moment` (aware) is within the documented range from now."""
    now = now or utcnow()
    if moment < now - PAST_TOLERANCE:
        raise ValueError(TOO_EARLY)
    if moment > now + MAX_AHEAD:
        raise ValueError(TOO_LATE)
    return moment


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Credentials(_Strict):
    email: EmailStr = Field(max_length=320)
    password: StrictStr = Field(min_length=MIN_PASSWORD_CHARS, max_length=1024)


class LoginInput(_Strict):
    email: StrictStr = Field(max_length=320)
    password: StrictStr = Field(max_length=1024)


class RoleInput(_Strict):
    role: StrictStr

    @field_validator("role")
    @classmethod
    def known_role(cls, value):
        if value not in ("user", "admin"):
            raise ValueError("must be 'user' or 'admin'")
        return value


RecipientText = Annotated[StrictStr, Field(max_length=MAX_RECIPIENT_CHARS), AfterValidator(recipient)]


class MessageInput(_Strict):
    """The email of a job or a schedule. Cheap limits (how many, how long) are checked before any
    address is parsed."""

    to: list[RecipientText]
    subject: StrictStr = Field(min_length=1, max_length=MAX_SUBJECT_CHARS)
    body: StrictStr

    @field_validator("to", mode="before")
    @classmethod
    def how_many(cls, value):
        """`to` is one recipient or a list of up to MAX_RECIPIENTS, counted before any is parsed."""
        if isinstance(value, str):
            return [value]
        if isinstance(value, list):
            if not value:
                raise ValueError("add at least one recipient")
            if len(value) > MAX_RECIPIENTS:
                raise ValueError(f"at most {MAX_RECIPIENTS} recipients")
        return value

    @field_validator("to")
    @classmethod
    def one_copy_per_mailbox(cls, recipients):
        """Keep order, drop repeats of a mailbox (domain case and IDNA spelling ignored)."""
        return [str(kept) for kept in unique_mailboxes(recipients)]

    @field_validator("subject")
    @classmethod
    def one_line(cls, value):
        one_line_text(value)
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("body", mode="before")
    @classmethod
    def body_length(cls, value):
        """More characters than the byte limit is too big whatever the encoding: no need to encode it."""
        if isinstance(value, str) and len(value) > MAX_BODY_BYTES:
            raise ValueError(f"must be at most {MAX_BODY_BYTES // 1024} KB")
        return value

    @field_validator("body")
    @classmethod
    def body_size(cls, value):
        if len(value.encode("utf-8")) > MAX_BODY_BYTES:
            raise ValueError(f"must be at most {MAX_BODY_BYTES // 1024} KB")
        return value


class JobTimingInput(_Strict):
    """When a job goes out: `send_at`, in which zone, within which windows, until when.

    `send_at` and `expires_at` are parsed here (a wall time, or an instant when they carry an
    offset) and read in the zone by webapp.services.job_timing, which also checks their range.
    """

    send_at: Annotated[StrictStr | None, AfterValidator(wall_or_instant)] = None
    timezone: Annotated[StrictStr | None, Field(max_length=64), AfterValidator(known_zone)] = None
    windows: Annotated[list[WindowInput] | None, AfterValidator(window_list)] = None
    expires_at: Annotated[StrictStr | None, AfterValidator(wall_or_instant)] = None


class JobInput(MessageInput, JobTimingInput):
    """A job to create: the email and its timing."""


class JobPatch(JobInput):
    """A reschedule: any of JobInput's fields, each validated the same way; omitted = unchanged.

    Only `expires_at` may be null (no expiry any more); the others have no null to be.
    """

    to: list[RecipientText] = None
    subject: StrictStr = Field(None, min_length=1, max_length=MAX_SUBJECT_CHARS)
    body: StrictStr = None
    send_at: Annotated[StrictStr, AfterValidator(wall_or_instant)] = None
    timezone: Annotated[StrictStr, Field(max_length=64), AfterValidator(known_zone)] = None
    windows: Annotated[list[WindowInput], AfterValidator(window_list)] = None


class AccountSettings(_Strict):
    """PATCH /api/users/me: the zone wall times are read in, and the default windows of new jobs."""

    timezone: Annotated[StrictStr, Field(max_length=64), AfterValidator(known_zone)] = None
    windows: Annotated[list[WindowInput], AfterValidator(window_list)] = None


def _messages(exc):
    fields = {}
    for err in exc.errors():
        name = ".".join(str(part) for part in err["loc"]) or "body"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "is not a known field"
        elif err["type"] == "missing":
            message = "is required"
        fields.setdefault(name, message)
    return fields


def parse(model, data):
    """Validate `data` (a dict from JSON or a form) against `model`."""
    if not isinstance(data, dict):
        raise ValidationFailed("The request body must be a JSON object.", {"body": "expected a JSON object"})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed("Some fields are not valid.", _messages(exc)) from None


def parse_page(args, default_per_page=20, max_per_page=100):
    """Read `page` and `per_page` from query args: page 1..MAX_PAGE, per_page 1..100.

    The page is capped so that the skip it turns into stays a small number
    (an unbounded page overflows the database's 64-bit skip).
    """
    fields = {}
    values = {}
    for name, default, upper in (("page", 1, MAX_PAGE), ("per_page", default_per_page, max_per_page)):
        raw = args.get(name)
        if raw in (None, ""):
            values[name] = default
            continue
        try:
            number = int(raw)
        except ValueError:
            fields[name] = "must be a whole number"
            continue
        if not 1 <= number <= upper:
            fields[name] = f"must be between 1 and {upper}"
            continue
        values[name] = number
    if fields:
        detail = "; ".join(f"{name} {message}" for name, message in fields.items())
        raise ValidationFailed(f"Invalid pagination: {detail}.", fields)
    return values["page"], values["per_page"]
