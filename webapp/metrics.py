"""`GET /metrics` for Prometheus: the same figures as the status page, read from MongoDB per scrape.

Multiprocess-safe by construction: nothing is counted in the web process.
Each scrape builds a fresh CollectorRegistry whose one collector reads the
database (the kept job counts, the delivery totals document, heartbeats) and the
queue, so every gunicorn worker on every host answers the same numbers and a
restart resets nothing (no prometheus_client multiprocess directory needed).

Access: with METRICS_TOKEN set, `Authorization: Bearer <token>` is required;
without it, only loopback clients are answered, and a request that came
through a proxy (it carries X-Forwarded-For or Forwarded) is not loopback.
"""

import hmac
import ipaddress

from flask import Blueprint
from flask import Response
from flask import current_app
from flask import request
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.exposition import choose_encoder

from tasks.queue import queue_depth
from webapp.services.monitoring import delivery_stats
from webapp.services.monitoring import heartbeats
from webapp.services.monitoring import job_counts
from webapp.services.monitoring.tally import LATENESS_BOUNDS
from webapp.services.monitoring.tally import OUTCOMES

bp = Blueprint("metrics", __name__)


class MailjobsCollector:
    """Reads every metric from MongoDB and the queue when the registry collects it."""

    def collect(self):
        by_status = GaugeMetricFamily(
            "mailjobs_jobs", "Jobs stored, per status (at most JOB_COUNTS_SECONDS old).", labels=["status"]
        )
        for status, count in job_counts.read(current_app.config["JOB_COUNTS_SECONDS"]).counts.items():
            by_status.add_metric([status], count)
        yield by_status

        totals = delivery_stats.totals()
        outcomes = CounterMetricFamily(
            "mailjobs_deliveries",
            "Delivery outcomes: sent (the SMTP server answered 250), failed (given up), "
            "retried (another attempt scheduled). Written by the consumers once per heartbeat.",
            labels=["outcome"],
        )
        for outcome in OUTCOMES:
            outcomes.add_metric([outcome], totals[outcome])
        yield outcomes

        cumulative, buckets = 0, []
        for bound, count in zip((*LATENESS_BOUNDS, float("inf")), totals["buckets"], strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
        yield HistogramMetricFamily(
            "mailjobs_delivery_lateness_seconds",
            "Seconds from a job's send_at to the SMTP server's 250.",
            buckets=buckets,
            sum_value=totals["sum"],
        )

        alive = sum(1 for record in heartbeats.list_workers() if record["alive"])
        yield GaugeMetricFamily("mailjobs_workers_alive", "Consumer processes with a recent heartbeat.", value=alive)

        depth = GaugeMetricFamily(
            "mailjobs_queue_depth",
            "Huey tasks waiting: pending (in the queue) and "
            "scheduled (set aside by a consumer until their time). Absent when the queue "
            "cannot be reached.",
            labels=["queue"],
        )
        for queue, count in queue_depth().items():
            if count is not None:
                depth.add_metric([queue], count)
        yield depth


def _is_loopback(address):
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False


def _refusal():
    """A plain-text 401/403 when this request may not read the metrics, else None."""
    token = current_app.config.get("METRICS_TOKEN")
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return None
        return Response(
            "401 Unauthorized: send Authorization: Bearer <METRICS_TOKEN>\n",
            401,
            {"WWW-Authenticate": 'Bearer realm="metrics"'},
            mimetype="text/plain",
        )
    proxied = "X-Forwarded-For" in request.headers or "Forwarded" in request.headers
    if _is_loopback(request.remote_addr) and not proxied:
        return None
    return Response(
        "403 Forbidden: /metrics answers loopback clients only; set METRICS_TOKEN to scrape it from elsewhere\n",
        403,
        mimetype="text/plain",
    )


@bp.get("/metrics")
def metrics():
    """The Prometheus exposition (text format, or OpenMetrics if the scraper asks for it)."""
    refusal = _refusal()
    if refusal is not None:
        return refusal
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MailjobsCollector())
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = Response(encode(registry), content_type=content_type)
    response.headers["Cache-Control"] = "no-store"
    return response
