"""Liveness for load balancers and compose healthchecks."""

import logging

from webapp.api.blueprint import bp
from webapp.api.contract import describe
from webapp.api.status_schemas import HealthOut
from webapp.api.status_schemas import UnavailableOut
from webapp.models import User
from webapp.services.monitoring import stats

log = logging.getLogger(__name__)


@bp.get("/health")
@describe(responses={200: HealthOut, 503: UnavailableOut})
def health():
    """200 when the database answers, 503 otherwise (the queue being down only delays mail).

    `status` is `degraded` (still 200: the app itself is fine) when no consumer
    is alive or delivery is paused: mail is not going out.
    """
    try:
        User._get_collection().database.command("ping")
        delivery = stats.health()
    except Exception as exc:  # any driver error means "not ready"
        log.warning("health check: database unreachable: %s", exc)
        return UnavailableOut(status="unavailable", database="unreachable"), 503
    degraded = delivery["workers_alive"] == 0 or delivery["paused"]
    return HealthOut(status="degraded" if degraded else "ok", database="ok", **delivery)
