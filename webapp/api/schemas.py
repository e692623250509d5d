"""The shapes of the API's answers, as pydantic models: they shape each response and the document.

Datetimes go out as ISO-8601 in UTC with milliseconds and a `Z` (`2026-12-01T08:00:00.000Z`),
ids as 24 hexadecimal digits. The query-string models describe what `parse_page` and
`check_status_filter` read (the same constants bound both; they stay functions because the
pages share them); tests/api/test_openapi.py checks the bounds at their edges.
"""

from datetime import datetime
from typing import Annotated
from typing import ClassVar
from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import PlainSerializer
from pydantic import WithJsonSchema
from pydantic import create_model
from pydantic.json_schema import SkipJsonSchema

from webapp.models.job import JobStatus
from webapp.models.user import Role
from webapp.services import audit
from webapp.services.scheduling import timing
from webapp.services.validation import MAX_PAGE
from webapp.services.validation import MAX_PER_PAGE
from webapp.timeutil import isoformat_z

OBJECT_ID_PATTERN = "^[0-9a-f]{24}$"
HHMM_PATTERN = "^([01][0-9]|2[0-3]):[0-5][0-9]$"
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"

UtcTimestamp = Annotated[
    datetime,
    PlainSerializer(isoformat_z, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": TIMESTAMP_PATTERN,
            "examples": ["2026-12-01T08:00:00.000Z"],
        }
    ),
]
ObjectIdText = Annotated[str, Field(pattern=OBJECT_ID_PATTERN, examples=["6650c0ffee0ddba11ad0be15"])]
StatusName = Literal[JobStatus.ALL]
RoleName = Literal[Role.ALL]
AuditAction = Literal[tuple(audit.ACTIONS)]


class Out(BaseModel):
    """An answer: a field the model does not name is a bug, not extra data."""

    model_config = ConfigDict(extra="forbid")


class ErrorDetail(Out):
    code: str = Field(description="Stable and machine-readable, e.g. `validation_failed`, `not_found`.")
    message: str = Field(description="For people.")
    fields: dict[str, str] = Field(description="Per-field messages (for 422); empty otherwise.")


class ErrorOut(Out):
    """Every 4xx (and 5xx) answer of the API."""

    error: ErrorDetail


class MessageOut(Out):
    message: str


class RegisteredOut(Out):
    id: ObjectIdText
    email: str
    role: RoleName


class TokenOut(Out):
    access_token: str = Field(description="Send it as `Authorization: Bearer <token>`.")
    token_type: Literal["Bearer"]
    expires_in: int = Field(ge=1, description="Seconds until the token expires.")


class WindowOut(Out):
    """An availability window, in the owner's zone (see webapp.services.scheduling.timing)."""

    days: list[Literal[timing.DAYS]] = Field(min_length=1)
    start: str = Field(pattern=HHMM_PATTERN, examples=["09:00"])
    end: str = Field(
        pattern=HHMM_PATTERN,
        examples=["17:00"],
        description="Exclusive (23:59: to the end of the day); before `start`: the next day.",
    )


class UserOut(Out):
    id: ObjectIdText
    email: str
    role: RoleName
    timezone: str = Field(
        description="IANA time zone: the default of new jobs and schedules, and the one the "
        "pages show times in, e.g. `Europe/Paris`."
    )
    windows: list[WindowOut] = Field(
        description="Default windows of jobs and schedules created without any; [] = any time."
    )
    disabled: bool = Field(description="Disabled by an admin: no sign-in, tokens refused, jobs held.")
    created_at: UtcTimestamp


class AttemptOut(Out):
    number: int = Field(ge=1)
    worker: str | None
    started_at: UtcTimestamp | None
    finished_at: UtcTimestamp | None
    outcome: str | None = Field(description="running, sent, retry, failed, lease_expired or in_doubt.")
    error: str | None


class JobOut(Out):
    id: ObjectIdText
    owner_id: ObjectIdText
    to: list[str] = Field(description="Recipients as stored: `address` or `Name <address>`.")
    subject: str
    body: str
    send_at: UtcTimestamp
    status: StatusName
    attempts: int = Field(ge=0)
    max_attempts: int = Field(ge=0)
    last_error: str | None
    next_attempt_at: UtcTimestamp | None = Field(description="When the next attempt may start (PENDING only).")
    message_id: str
    created_at: UtcTimestamp
    updated_at: UtcTimestamp
    sent_at: UtcTimestamp | None
    timezone: str = Field(description="The IANA zone its wall times and windows are read in.")
    windows: list[WindowOut] = Field(description="When it may go out ([] = any time).")
    expires_at: UtcTimestamp | None = Field(description="Not handed over by then: FAILED, `expired ...`.")
    effective_send_at: UtcTimestamp = Field(
        description="When it actually goes out: `send_at` pushed to the next window opening (or its next retry)."
    )
    schedule_id: ObjectIdText | None = Field(description="The recurring schedule it is an occurrence of.")
    occurrence_at: UtcTimestamp | None = Field(description="The schedule's occurrence it stands for.")


class JobDetailOut(JobOut):
    """A job with its delivery attempts, oldest first."""

    attempts_log: list[AttemptOut]


class Page(Out):
    total: int = Field(ge=0)
    page: int = Field(ge=1, le=MAX_PAGE)
    per_page: int = Field(ge=1, le=MAX_PER_PAGE)


class JobPageOut(Page):
    items: list[JobOut]


# One count per status, every status present (zeros included).
StatusCounts = create_model("StatusCounts", __base__=Out, **{status: (int, Field(ge=0)) for status in JobStatus.ALL})


class AdminJobPageOut(JobPageOut):
    counts: StatusCounts = Field(
        description="Everyone's jobs per status, as counted at `counted_at` (at most "
        "JOB_COUNTS_SECONDS old); `total` comes from them when no owner is given."
    )
    counted_at: UtcTimestamp


class UserPageOut(Page):
    items: list[UserOut]


class AuditEntryOut(Out):
    """One security-relevant event: who did what to whom, when, from where, and how it went."""

    id: ObjectIdText
    at: UtcTimestamp
    action: AuditAction
    outcome: Literal[audit.OUTCOMES]
    actor_id: ObjectIdText | None
    actor_email: str | None = Field(description="As it was then (as typed, for a failed sign-in).")
    target_type: str | None = Field(description="user, job, token or delivery.")
    target_id: str | None
    target_label: str | None
    ip: str | None
    detail: str | None


class AuditPageOut(Page):
    items: list[AuditEntryOut]


# Query strings and path parameters (documentation: see the module docstring).
class Query(BaseModel):
    """A query string. Our readers take an empty value as an absent one (the pages' filter
    forms send `status=` for "all"), so the document allows it (OpenAPI's allowEmptyValue)."""

    EMPTY_MEANS_ABSENT: ClassVar[bool] = True


class PageQuery(Query):
    page: int = Field(1, ge=1, le=MAX_PAGE)
    per_page: int = Field(20, ge=1, le=MAX_PER_PAGE)


class JobListQuery(PageQuery):
    status: StatusName | SkipJsonSchema[None] = Field(None, description="Only jobs in this status.")


class AdminJobListQuery(JobListQuery):
    owner: str | SkipJsonSchema[None] = Field(None, description="Only this user's jobs: a user id or an email.")


class AuditQuery(PageQuery):
    actor: str | SkipJsonSchema[None] = Field(None, description="Only this actor's entries: an email or a user id.")
    action: AuditAction | SkipJsonSchema[None] = Field(None, description="Only this action.")


class JobPath(BaseModel):
    job_id: str = Field(description="A job id (24 hexadecimal digits); anything else is a 404.")


class UserPath(BaseModel):
    user_id: str = Field(description="A user id (24 hexadecimal digits); anything else is a 404.")
