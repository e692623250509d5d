"""The shapes of the scheduling answers (recurring schedules, bulk actions): see webapp/api/schemas.py."""

from typing import Literal

from pydantic import BaseModel
from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from webapp.api.schemas import ObjectIdText
from webapp.api.schemas import Out
from webapp.api.schemas import Page
from webapp.api.schemas import PageQuery
from webapp.api.schemas import UtcTimestamp
from webapp.api.schemas import WindowOut
from webapp.models.schedule import CatchUp
from webapp.models.schedule import ScheduleStatus
from webapp.services.jobs.bulk import ACTIONS


class ScheduleOut(Out):
    """A recurring email: `cron` read in `timezone`; each occurrence becomes a job."""

    id: ObjectIdText
    owner_id: ObjectIdText
    to: list[str]
    subject: str
    body: str
    cron: str = Field(examples=["0 9 * * mon-fri"], description="5 fields: minute hour day-of-month month day-of-week.")
    timezone: str
    windows: list[WindowOut]
    starts_at: UtcTimestamp | None
    until: UtcTimestamp | None
    max_runs: int | None = Field(ge=1)
    catch_up: Literal[CatchUp.CHOICES] = Field(
        description="After a downtime: none (skip what was missed), latest (the most recent one), all."
    )
    status: Literal[ScheduleStatus.ALL] = Field(description="finished: until or max_runs reached.")
    runs: int = Field(ge=0, description="Occurrences made into jobs so far.")
    next_runs: list[UtcTimestamp] = Field(max_length=5, description="The next (up to) 5 runs, UTC.")
    created_at: UtcTimestamp
    updated_at: UtcTimestamp


class SchedulePageOut(Page):
    items: list[ScheduleOut]


class ScheduleDeletedOut(Out):
    deleted: ObjectIdText
    cancelled_jobs: int = Field(ge=0, description="Its occurrences not yet running, now CANCELLED.")


class BulkOut(Out):
    action: Literal[ACTIONS]
    affected: int = Field(ge=0, description="PENDING jobs changed (others in the selection are left alone).")
    queued: int = Field(ge=0, description="Jobs queued for their new time.")


class AdminScheduleListQuery(PageQuery):
    owner: str | SkipJsonSchema[None] = Field(None, description="Only this user's schedules: a user id or an email.")


class SchedulePath(BaseModel):
    schedule_id: str = Field(description="A schedule id (24 hexadecimal digits); anything else is a 404.")
