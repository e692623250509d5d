"""MongoDB documents, one module per collection."""

from webapp.models.job import Attempt
from webapp.models.job import Job
from webapp.models.job import JobStatus
from webapp.models.revoked_token import RevokedToken
from webapp.models.sweep_turn import SweepTurn
from webapp.models.user import Role
from webapp.models.user import User

__all__ = ["Attempt", "Job", "JobStatus", "RevokedToken", "Role", "SweepTurn", "User"]
