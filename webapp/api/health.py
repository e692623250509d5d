"""Liveness for load balancers and compose healthchecks."""

import logging

from webapp.api.blueprint import bp
from webapp.api.contract import describe
from webapp.api.schemas import HealthOut
from webapp.models import User

log = logging.getLogger(__name__)


@bp.get("/health")
@describe(responses={200: HealthOut, 503: (HealthOut, "The database does not answer.")})
def health():
    """200 when the database answers, 503 otherwise (the queue being down only delays mail)."""
    try:
        User._get_collection().database.command("ping")
    except Exception as exc:  # any driver error means "not ready"
        log.warning("health check: database unreachable: %s", exc)
        return HealthOut(status="unavailable", database="unreachable"), 503
    return HealthOut(status="ok", database="ok")
