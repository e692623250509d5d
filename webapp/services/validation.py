"""Input rules shared by the API and the forms, written with pydantic.

Each `parse_*` returns clean values or raises `ValidationFailed` whose
`fields` map a field name to a message a person can act on.
"""

from datetime import timedelta

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import EmailStr
from pydantic import Field
from pydantic import StrictStr
from pydantic import ValidationError
from pydantic import field_validator

from webapp.errors import ValidationFailed
from webapp.timeutil import parse_iso8601
from webapp.timeutil import utcnow

MAX_RECIPIENTS = 50
MAX_SUBJECT_CHARS = 998  # RFC 5322's line limit
MAX_BODY_BYTES = 100 * 1024
MIN_PASSWORD_CHARS = 8
# A small grace for clock skew and slow typing; older than this is a mistake.
PAST_TOLERANCE = timedelta(minutes=1)


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


class JobInput(_Strict):
    to: list[EmailStr]
    subject: StrictStr = Field(min_length=1, max_length=MAX_SUBJECT_CHARS)
    body: StrictStr
    send_at: StrictStr | None = None

    @field_validator("to", mode="before")
    @classmethod
    def one_or_many(cls, value):
        """`to` may be one address or a list of them."""
        return [value] if isinstance(value, str) else value

    @field_validator("to")
    @classmethod
    def recipients(cls, addresses):
        if not addresses:
            raise ValueError("add at least one recipient")
        if len(addresses) > MAX_RECIPIENTS:
            raise ValueError(f"at most {MAX_RECIPIENTS} recipients")
        # Keep order, drop repeats: one copy per address.
        return list(dict.fromkeys(addresses))

    @field_validator("subject")
    @classmethod
    def one_line(cls, value):
        if "\r" in value or "\n" in value:
            raise ValueError("must be a single line (no line breaks)")
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("body")
    @classmethod
    def body_size(cls, value):
        if len(value.encode("utf-8")) > MAX_BODY_BYTES:
            raise ValueError(f"must be at most {MAX_BODY_BYTES // 1024} KB")
        return value

    @field_validator("send_at")
    @classmethod
    def when(cls, value):
        if value is None:
            return None
        try:
            moment = parse_iso8601(value)
        except ValueError:
            raise ValueError("must be ISO-8601 with an offset or Z, e.g. 2026-12-01T09:00:00Z") from None
        if moment < utcnow() - PAST_TOLERANCE:
            raise ValueError("is more than a minute in the past")
        return moment


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
    """Read `page` and `per_page` from query args: 1-based, per_page 1..100."""
    fields = {}
    values = {}
    for name, default, upper in (("page", 1, None), ("per_page", default_per_page, max_per_page)):
        raw = args.get(name)
        if raw in (None, ""):
            values[name] = default
            continue
        try:
            number = int(raw)
        except ValueError:
            fields[name] = "must be a whole number"
            continue
        if number < 1 or (upper and number > upper):
            fields[name] = f"must be between 1 and {upper}" if upper else "must be 1 or more"
            continue
        values[name] = number
    if fields:
        raise ValidationFailed("Invalid pagination.", fields)
    return values["page"], values["per_page"]
