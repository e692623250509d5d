"""MongoDB documents, one module per collection."""

from webapp.models.audit_entry import AuditEntry
from webapp.models.control import DeliveryControl
from webapp.models.delivery_stats import DeliveryStats
from webapp.models.job import Attempt
from webapp.models.job import Job
from webapp.models.job import JobStatus
from webapp.models.job_counts import JobCounts
from webapp.models.rate_counter import RateCounter
from webapp.models.revoked_token import RevokedToken
from webapp.models.schedule import Schedule
from webapp.models.sweep_turn import SweepTurn
from webapp.models.user import Role
from webapp.models.user import User
from webapp.models.window import Window
from webapp.models.worker_beat import WorkerBeat

__all__ = [
    "Attempt",
    "AuditEntry",
    "DeliveryControl",
    "DeliveryStats",
    "Job",
    "JobCounts",
    "JobStatus",
    "RateCounter",
    "RevokedToken",
    "Role",
    "Schedule",
    "SweepTurn",
    "User",
    "Window",
    "WorkerBeat",
]
