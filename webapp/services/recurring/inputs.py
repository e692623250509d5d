"""The inputs of recurring schedules (POST and PATCH /api/users/schedules), shape checks only.

Times that need the zone (`starts_at`, `until`) are read, and ranges checked, in
webapp.services.recurring.schedules, with the same rule as a job's `send_at`.
"""

from typing import Annotated
from typing import Literal

from pydantic import AfterValidator
from pydantic import ConfigDict
from pydantic import Field
from pydantic import StrictInt
from pydantic import StrictStr

from webapp.models.schedule import CatchUp
from webapp.models.schedule import ScheduleStatus
from webapp.services.scheduling.inputs import WindowInput
from webapp.services.scheduling.inputs import known_zone
from webapp.services.scheduling.inputs import omitted_means_unchanged
from webapp.services.scheduling.inputs import wall_or_instant
from webapp.services.scheduling.inputs import window_list
from webapp.services.scheduling.recurrence import MAX_CRON_CHARS
from webapp.services.scheduling.recurrence import parse_cron
from webapp.services.validation import BODY_SCHEMA
from webapp.services.validation import MAX_SUBJECT_CHARS
from webapp.services.validation import SUBJECT_SCHEMA
from webapp.services.validation import MessageInput
from webapp.services.validation import Recipients

MAX_RUNS = 100_000

Cron = Annotated[StrictStr, Field(max_length=MAX_CRON_CHARS), AfterValidator(parse_cron)]
Zone = Annotated[StrictStr, Field(max_length=64), AfterValidator(known_zone)]
Windows = Annotated[list[WindowInput], AfterValidator(window_list)]
When = Annotated[StrictStr, AfterValidator(wall_or_instant)]
Runs = Annotated[StrictInt, Field(ge=1, le=MAX_RUNS)]


class ScheduleInput(MessageInput):
    """A recurring email: `cron` (5 fields) read in `timezone` (default: the account's zone).

    `windows` default to the account's; `starts_at` (default now) and `until` bound the
    occurrences, `max_runs` counts them; `catch_up` says what happens to occurrences missed
    while nothing could make or send them: none, latest (default), all.
    """

    cron: Cron
    timezone: Zone | None = None
    windows: Windows | None = None
    starts_at: When | None = None
    until: When | None = None
    max_runs: Runs | None = None
    catch_up: Literal["none", "latest", "all"] = CatchUp.LATEST


class SchedulePatch(ScheduleInput):
    """Any of ScheduleInput's fields, and `status` (active or paused); omitted = unchanged.

    `starts_at`, `until` and `max_runs` may be null (no bound any more); the others may not.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra=omitted_means_unchanged)

    to: Recipients = None
    subject: StrictStr = Field(None, min_length=1, max_length=MAX_SUBJECT_CHARS, json_schema_extra=SUBJECT_SCHEMA)
    body: StrictStr = Field(None, json_schema_extra=BODY_SCHEMA)
    cron: Cron = None
    timezone: Zone = None
    windows: Windows = None
    catch_up: Literal["none", "latest", "all"] = None
    status: Literal["active", "paused"] = None


STATUS_CHOICES = (ScheduleStatus.ACTIVE, ScheduleStatus.PAUSED)
