"""The Huey instance: on Redis when `REDIS_URL` is set, else SQLite under var/.

No Flask import here, so the consumers (worker.py) and the web app can both
load it cheaply. Task payloads are signed with SECRET_KEY: Huey's default
serializer is pickle, and whoever can write to the queue could otherwise run
code in the consumer.
"""

import os
from pathlib import Path

from huey import RedisHuey
from huey import SqliteHuey
from huey.serializer import SignedSerializer
from redis import ConnectionPool

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEV_SECRET_KEY = "dev-secret-key-change-me-in-production"


def make_huey():
    """Build the queue from the environment (the same variables the app reads)."""
    serializer = SignedSerializer(secret=os.environ.get("SECRET_KEY") or DEV_SECRET_KEY, salt="mailjobs.tasks")
    name = os.environ.get("HUEY_NAME") or "mailjobs"
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        # Timeouts, so an unreachable Redis fails fast (the job is stored and the sweep queues it
        # later) instead of holding an API request for the kernel's two-minute connect timeout.
        # The socket timeout stays above the consumer's one-second blocking read.
        pool = ConnectionPool.from_url(redis_url, socket_connect_timeout=2, socket_timeout=10)
        return RedisHuey(name, connection_pool=pool, results=False, serializer=serializer, utc=True)
    path = Path(os.environ.get("HUEY_SQLITE_PATH") or PROJECT_ROOT / "var" / "huey.db")
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(name, filename=str(path), results=False, serializer=serializer, utc=True)


def queue_depth(queue=None):
    """Huey's {pending, scheduled} task counts; None for both when the queue cannot be reached."""
    queue = queue or huey
    try:
        return {"pending": queue.pending_count(), "scheduled": queue.scheduled_count()}
    except Exception:  # the broker is down: the page says so rather than failing
        return {"pending": None, "scheduled": None}


huey = make_huey()
