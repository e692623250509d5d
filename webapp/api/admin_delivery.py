"""Admins: the delivery system's figures, and the pause switch."""

from flask import current_app
from flask import request
from flask_jwt_extended import current_user

from tasks.queue import queue_depth
from webapp import operations
from webapp.api.blueprint import admin_required
from webapp.api.blueprint import bp
from webapp.api.contract import describe
from webapp.api.status_schemas import DeliveryStateOut
from webapp.api.status_schemas import ResumedOut
from webapp.api.status_schemas import StatsOut
from webapp.services.delivery import pause
from webapp.services.monitoring import heartbeats
from webapp.services.monitoring import stats


@bp.get("/admin/stats")
@describe(responses={200: StatsOut})
@admin_required
def delivery_stats():
    """Counts, overdue backlog, rates, lateness, workers, queue, pause and SMTP state, in one document."""
    config = current_app.config
    return stats.collect(config["OVERDUE_SECONDS"], queue_depth(), config["JOB_COUNTS_SECONDS"]).to_json()


@bp.get("/admin/delivery")
@describe(responses={200: DeliveryStateOut})
@admin_required
def delivery_state():
    """Whether delivery is paused, since when, by whom, and how many live workers have seen it."""
    return pause.pause_state(heartbeats.list_workers())


@bp.post("/admin/delivery/pause")
@describe(responses={200: DeliveryStateOut})
@admin_required
def pause_delivery():
    """Stop handing email to the SMTP server (jobs stay PENDING; sends in flight finish)."""
    operations.pause_delivery(current_user, request.remote_addr)
    return pause.pause_state(heartbeats.list_workers())


@bp.post("/admin/delivery/resume")
@describe(responses={200: ResumedOut})
@admin_required
def resume_delivery():
    """Deliver again, and queue every due job at once (each still goes out once)."""
    queued = operations.resume_delivery(current_user, request.remote_addr)
    return {**pause.pause_state(heartbeats.list_workers()), "queued": queued}
