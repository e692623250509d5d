"""The shapes of /api/health, GET /api/admin/stats and the delivery switch (webapp/api/admin_delivery.py).

The figures are built by webapp.services.monitoring.stats, control and workers as plain dicts; the
models read them (a key they do not name is an error) and shape the answer.
"""

from typing import Literal

from pydantic import Field
from pydantic import create_model

from webapp.api.schemas import Out
from webapp.api.schemas import StatusCounts
from webapp.api.schemas import UtcTimestamp
from webapp.services.monitoring.tally import OUTCOMES


class HealthOut(Out):
    """The app and the database answer; `degraded` when no consumer is alive or delivery is paused."""

    status: Literal["ok", "degraded"]
    database: Literal["ok"]
    workers_alive: int = Field(ge=0)
    paused: bool


class UnavailableOut(Out):
    """The database does not answer."""

    status: Literal["unavailable"]
    database: Literal["unreachable"]


class DeliveryStateOut(Out):
    """Whether delivery is paused, since when, by whom, and how many live consumers have seen it."""

    paused: bool
    paused_at: UtcTimestamp | None
    paused_by: str | None
    acknowledged_by: int = Field(ge=0, description="Live consumers whose last heartbeat saw this pause.")
    workers: int = Field(ge=0, description="Live consumers.")


class ResumedOut(DeliveryStateOut):
    """Delivery runs again; `queued` due jobs were queued at once."""

    queued: int = Field(ge=0)


_OUTCOME_FIELDS = {name: (int, Field(ge=0)) for name in OUTCOMES}  # sent, failed, retried
MinuteRate = create_model("MinuteRate", __base__=Out, minute=(UtcTimestamp, ...), **_OUTCOME_FIELDS)
DayRate = create_model("DayRate", __base__=Out, day=(str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")), **_OUTCOME_FIELDS)


class Rates(Out):
    per_minute: list[MinuteRate] = Field(description="The last 60 minutes, oldest first.")
    per_day: list[DayRate] = Field(description="The last 30 UTC days, oldest first.")


class Overdue(Out):
    count: int = Field(ge=0)
    oldest_seconds: float | None


class Lateness(Out):
    """Seconds from send_at to the SMTP server's 250 over the last hour (None without samples)."""

    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None


class SmtpError(Out):
    kind: str = Field(description="`connection`, `tls` or `auth`.")
    text: str
    at: UtcTimestamp


class WorkerSmtp(Out):
    last_ok_at: UtcTimestamp | None
    last_error: SmtpError | None


class WorkerOut(Out):
    id: str = Field(description="`host:pid`.")
    host: str | None
    pid: int | None
    started_at: UtcTimestamp | None
    beat_at: UtcTimestamp | None
    seconds_since_beat: float
    alive: bool
    threads: int = Field(ge=0)
    in_flight: list[str] = Field(description="Ids of the jobs it is sending.")
    paused_seen: UtcTimestamp | None
    smtp: WorkerSmtp


class SmtpState(WorkerSmtp):
    ok: bool | None = Field(
        description="True when the last hand-over is newer than the last error; None before either."
    )


class Queue(Out):
    pending: int | None = Field(ge=0, description="None when the queue cannot be reached.")
    scheduled: int | None = Field(ge=0)


class StatsOut(Out):
    """The status page's figures (see the README, "The status page and metrics")."""

    counts: StatusCounts = Field(
        description="Jobs per status, as counted at `counted_at` (at most JOB_COUNTS_SECONDS old)."
    )
    counted_at: UtcTimestamp
    overdue: Overdue
    rates: Rates
    lateness: Lateness
    workers: list[WorkerOut]
    queue: Queue
    paused: bool
    smtp: SmtpState
