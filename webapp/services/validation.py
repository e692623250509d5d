"""Input rules shared by the API and the forms, written with pydantic.

Each `parse_*` returns clean values or raises `ValidationFailed` whose
`fields` map a field name to a message a person can act on.
"""

import re
from datetime import timedelta
from decimal import Decimal
from decimal import InvalidOperation
from typing import Annotated

from pydantic import AfterValidator
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import EmailStr
from pydantic import Field
from pydantic import StrictStr
from pydantic import ValidationError
from pydantic import WithJsonSchema
from pydantic import field_validator

from webapp.mail.addresses import MAX_RECIPIENT_CHARS
from webapp.mail.addresses import parse_recipient
from webapp.mail.addresses import unique_mailboxes
from webapp.services.errors import ValidationFailed
from webapp.services.scheduling.inputs import WINDOW_SCHEMA
from webapp.services.scheduling.inputs import WindowInput
from webapp.services.scheduling.inputs import known_zone
from webapp.services.scheduling.inputs import omitted_means_unchanged
from webapp.services.scheduling.inputs import wall_or_instant
from webapp.services.scheduling.inputs import window_list

MAX_RECIPIENTS = 50
MAX_SUBJECT_CHARS = 998  # RFC 5322's line limit
MAX_BODY_BYTES = 100 * 1024
MIN_PASSWORD_CHARS = 8
# 100,000 pages of 100 is ten million rows: deeper than any table is read page by page.
MAX_PAGE = 100_000
MAX_PER_PAGE = 100
# The range of send_at, measured from now: a small grace for clock skew and slow
# typing (older is a mistake), and ten years ahead (later is a typo, and years
# near 9999 break date arithmetic and display in some time zones).
PAST_TOLERANCE = timedelta(minutes=1)
MAX_AHEAD = timedelta(days=3653)
TOO_EARLY = "is more than a minute in the past"
TOO_LATE = "is more than 10 years ahead"
# Control characters (C0 but TAB, DEL, C1) and the Unicode line and paragraph
# separators: in a one-line field they would end or corrupt a mail header.
_CONTROL_CHARS = r"\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029"
_CONTROL = re.compile(f"[{_CONTROL_CHARS}]")
# What str.strip() removes (all of it in the BMP) but control characters, spelled out: `\s`
# means three different sets in Python, ECMA-262 and ASCII-mode readers of a JSON Schema pattern.
_BLANK_CHARS = "".join(
    f"\\u{code:04x}" for code in range(0x10000) if chr(code).isspace() and not _CONTROL.match(chr(code))
)
# The same rules in JSON Schema, for the OpenAPI document (webapp/api/openapi.py): "has no
# control character" and "has a character that is neither blank nor control". Unanchored
# searches on purpose: a `$` also matches before a final newline in Python's `re` (and so in
# Python JSON Schema validators), not in ECMA-262; `\uXXXX` reads the same in both.
ONE_LINE_SCHEMA = {"not": {"pattern": f"[{_CONTROL_CHARS}]"}}
NOT_BLANK_PATTERN = f"[^{_CONTROL_CHARS}{_BLANK_CHARS}]"
ROLES = ("user", "admin")
# An address is checked with email-validator (syntax, no DNS), stricter than JSON Schema's
# `email` format: the description says how. (A `pattern` for the dotted domain next to
# `format` and `maxLength` costs schemathesis a minute to find its edge cases.)
EMAIL_SCHEMA = {
    "examples": ["ada@example.com"],
    "description": "An email address with a domain name that has a dot (`ada@example.com`), checked for "
    "syntax only; special-use domains (.test, .local, .localhost, .invalid, .onion, .arpa) "
    "are refused.",
}


def one_line_text(value):
    """Refuse what a header line cannot carry: control characters (TAB is fine)."""
    control = _CONTROL.search(value)
    if control:
        kind = "line breaks" if control.group() in "\r\n" else "control characters"
        raise ValueError(f"must be a single line without {kind} (found U+{ord(control.group()):04X})")
    return value


def recipient(value):
    """One recipient, checked and written back in its stored form (see webapp.mail.addresses)."""
    one_line_text(value)
    parsed = parse_recipient(value)
    if len(str(parsed)) > MAX_RECIPIENT_CHARS:
        raise ValueError(f"must be at most {MAX_RECIPIENT_CHARS} characters")
    return parsed


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Credentials(_Strict):
    email: EmailStr = Field(max_length=320, json_schema_extra=EMAIL_SCHEMA)
    password: StrictStr = Field(min_length=MIN_PASSWORD_CHARS, max_length=1024, examples=["at-least-8"])


class LoginInput(_Strict):
    email: StrictStr = Field(max_length=320, examples=["ada@example.com"])
    password: StrictStr = Field(max_length=1024, examples=["at-least-8"])


class RoleInput(_Strict):
    role: StrictStr = Field(json_schema_extra={"enum": list(ROLES)})

    @field_validator("role")
    @classmethod
    def known_role(cls, value):
        if value not in ROLES:
            raise ValueError("must be 'user' or 'admin'")
        return value


# How the OpenAPI document shows the rules below that JSON Schema cannot state as pydantic
# reads them (a before-validator, a byte size, a one-line rule): metadata only, the
# validators decide. "mailbox" is our own format name: an address or `Name <address>`.
RECIPIENT_SCHEMA = {
    "type": "string",
    "format": "mailbox",
    "maxLength": MAX_RECIPIENT_CHARS,
    **ONE_LINE_SCHEMA,
    "examples": ["ada@example.com", "Ada Lovelace <ada@example.com>"],
    "description": "An address (`ada@example.com`) or an address with a display name "
    "(`Ada Lovelace <ada@example.com>`); international domains and local parts are accepted, "
    "special-use domains (.test, .local, ...) are refused.",
}
RECIPIENTS_SCHEMA = {
    "anyOf": [
        RECIPIENT_SCHEMA,
        {"type": "array", "items": RECIPIENT_SCHEMA, "minItems": 1, "maxItems": MAX_RECIPIENTS},
    ],
    "examples": [["ada@example.com", "Bob <bob@example.com>"]],
    "description": f"One recipient, or a list of 1 to {MAX_RECIPIENTS}; the same mailbox given twice goes out once.",
}
SEND_AT_SCHEMA = {
    "anyOf": [{"type": "string"}, {"type": "null"}],
    "default": None,
    "examples": ["2031-06-01T09:00:00", "2031-06-01T09:00:00+02:00"],
    "description": "ISO-8601: a wall time read in `timezone` (without an offset; a time the clocks skip moves "
    "forward by the gap, one they repeat is its first occurrence), or with an offset or `Z` (the "
    "offset wins); from a minute in the past to 10 years ahead; omitted or null means now.",
}

ZONE_SCHEMA = {
    "anyOf": [{"type": "string", "maxLength": 64}, {"type": "null"}],
    "default": None,
    "examples": ["Europe/Berlin"],
    "description": "An IANA time zone name; default the account's (else UTC).",
}
WINDOWS_SCHEMA = {
    "anyOf": [{"type": "array", "items": WINDOW_SCHEMA, "maxItems": 20}, {"type": "null"}],
    "default": None,
    "description": "Availability windows in the job's zone; omitted: the account's; `[]`: any time.",
}
EXPIRES_AT_SCHEMA = {
    "anyOf": [{"type": "string"}, {"type": "null"}],
    "default": None,
    "examples": ["2031-06-02T12:00:00"],
    "description": "ISO-8601, read like `send_at`; after `send_at` and after the first window "
    "opening. Not handed to the SMTP server by then: FAILED, `last_error` "
    "starting `expired`.",
}

RecipientText = Annotated[StrictStr, Field(max_length=MAX_RECIPIENT_CHARS), AfterValidator(recipient)]
# One recipient or a list, in the document as on the wire (MessageInput.how_many makes a list of one).
Recipients = Annotated[list[RecipientText], WithJsonSchema(RECIPIENTS_SCHEMA)]
SUBJECT_SCHEMA = {
    "pattern": NOT_BLANK_PATTERN,
    **ONE_LINE_SCHEMA,
    "examples": ["Hello"],
    "description": "One line, not blank; tab is the only control character allowed.",
}
BODY_SCHEMA = {
    "maxLength": MAX_BODY_BYTES,
    "examples": ["See you at nine."],
    "description": f"Any text up to {MAX_BODY_BYTES // 1024} KB in UTF-8.",
}


class MessageInput(_Strict):
    """The email of a job or a schedule. Cheap limits (how many, how long) are checked before any
    address is parsed."""

    to: Recipients
    subject: StrictStr = Field(min_length=1, max_length=MAX_SUBJECT_CHARS, json_schema_extra=SUBJECT_SCHEMA)
    body: StrictStr = Field(json_schema_extra=BODY_SCHEMA)

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
    offset) and read in the zone by webapp.services.jobs.job_timing, which also checks their range.
    """

    send_at: Annotated[StrictStr | None, AfterValidator(wall_or_instant), WithJsonSchema(SEND_AT_SCHEMA)] = None
    timezone: Annotated[
        StrictStr | None, Field(max_length=64), AfterValidator(known_zone), WithJsonSchema(ZONE_SCHEMA)
    ] = None
    windows: Annotated[list[WindowInput] | None, AfterValidator(window_list), WithJsonSchema(WINDOWS_SCHEMA)] = None
    expires_at: Annotated[StrictStr | None, AfterValidator(wall_or_instant), WithJsonSchema(EXPIRES_AT_SCHEMA)] = None


class JobInput(MessageInput, JobTimingInput):
    """A job to create: the email and its timing."""


class JobPatch(JobInput):
    """A reschedule: any of JobInput's fields, each validated the same way; omitted = unchanged.

    Only `expires_at` may be null (no expiry any more); the others have no null to be.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra=omitted_means_unchanged)

    to: Recipients = None
    subject: StrictStr = Field(None, min_length=1, max_length=MAX_SUBJECT_CHARS, json_schema_extra=SUBJECT_SCHEMA)
    body: StrictStr = Field(None, json_schema_extra=BODY_SCHEMA)
    send_at: Annotated[StrictStr, AfterValidator(wall_or_instant)] = None
    timezone: Annotated[StrictStr, Field(max_length=64), AfterValidator(known_zone)] = None
    windows: Annotated[list[WindowInput], AfterValidator(window_list)] = None


class AccountSettings(_Strict):
    """PATCH /api/users/me: the zone wall times are read in, and the default windows of new jobs."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=omitted_means_unchanged)

    timezone: Annotated[StrictStr, Field(max_length=64), AfterValidator(known_zone)] = None
    windows: Annotated[list[WindowInput], AfterValidator(window_list)] = None


def _messages(exc):
    fields: dict = {}
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


def _whole_number(text):
    """The whole number `text` writes, as a Decimal (what int() reads, and `20.0` or `2e1`, which
    JSON Schema and the OpenAPI document count as integers too), or None.

    Compared before any int() is made of it: `1e999999999` stays a cheap Decimal.
    """
    try:
        return Decimal(int(text))
    except ValueError:
        pass
    if any(char.isspace() for char in text):
        return None  # int() has refused it already, with its own idea of blanks
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite() or value != value.to_integral_value():
        return None
    return value


def parse_page(args, default_per_page=20, max_per_page=MAX_PER_PAGE):
    """Read `page` and `per_page` from query args: page 1..MAX_PAGE, per_page 1..100.

    The page is capped so that the skip it turns into stays a small number
    (an unbounded page overflows the database's 64-bit skip).
    """
    fields: dict = {}
    values = {}
    for name, default, upper in (("page", 1, MAX_PAGE), ("per_page", default_per_page, max_per_page)):
        raw = args.get(name)
        if raw in (None, ""):
            values[name] = default
            continue
        number = _whole_number(raw)
        if number is None:
            fields[name] = "must be a whole number"
            continue
        if not 1 <= number <= upper:
            fields[name] = f"must be between 1 and {upper}"
            continue
        values[name] = int(number)
    if fields:
        detail = "; ".join(f"{name} {message}" for name, message in fields.items())
        raise ValidationFailed(f"Invalid pagination: {detail}.", fields)
    return values["page"], values["per_page"]
