"""Helpers for the status tests: consumers that beat fast, a clean slate of figures, waiting."""

from pathlib import Path

from tests.support.consumer import HueyConsumer
from tests.support.waiting import wait_until

# Fast heartbeats, so "dead after 3 missed beats" takes 1.5 s, not 6.
FAST_BEAT = 0.5


class Consumers:
    """Huey consumer processes for one test, beating every FAST_BEAT seconds; stopped at the end."""

    def __init__(self, env, log_dir):
        self.env = env
        self.log_dir = Path(log_dir)
        self.started = []

    def start(self, workers=2, **overrides):
        env = {**self.env, "HEARTBEAT_SECONDS": str(FAST_BEAT), **{k: str(v) for k, v in overrides.items()}}
        consumer = HueyConsumer(env, self.log_dir / f"consumer-{len(self.started) + 1}.log", workers=workers).start()
        self.started.append(consumer)
        return consumer

    def stop_all(self):
        for consumer in self.started:
            if consumer.process.poll() is None:
                consumer.stop()


def clear_figures():
    """Forget every delivery figure, once every live consumer has flushed what it counted so far.

    A consumer writes its figures at its next heartbeat: clearing before that
    beat would let figures of an earlier test land after the clear.
    """
    from webapp.models import DeliveryStats
    from webapp.services.monitoring import heartbeats
    from webapp.timeutil import as_utc
    from webapp.timeutil import utcnow

    since = utcnow()
    wait_until(
        lambda: all(as_utc(r["beat_at"]) > since for r in heartbeats.list_workers() if r["alive"]),
        10,
        "a heartbeat from every live consumer",
    )
    DeliveryStats._get_collection().delete_many({})


def create_job(client, headers, **fields):
    """Schedule a job through the API (a reader, "Status test", now unless `fields` say otherwise); its JSON."""
    payload = {"to": "reader@example.com", "subject": "Status test", "body": "Hello."}
    payload.update(fields)
    response = client.post("/api/users/jobs", json=payload, headers=headers)
    assert response.status_code == 201, response.json
    return response.json
