"""MongoDB documents, one module per collection."""

from webapp.models.audit_entry import AuditEntry
from webapp.models.job import Attempt
from webapp.models.job import Job
from webapp.models.job import JobStatus
from webapp.models.rate_counter import RateCounter
from webapp.models.revoked_token import RevokedToken
from webapp.models.sweep_turn import SweepTurn
from webapp.models.user import Role
from webapp.models.user import User

__all__ = ["Attempt", "AuditEntry", "Job", "JobStatus", "RateCounter", "RevokedToken", "Role", "SweepTurn", "User"]
