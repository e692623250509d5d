"""Huey tasks. `huey_consumer worker.huey` (worker.py) imports this package, so every task module is imported here."""

from tasks import delivery  # noqa: F401 - registers the tasks
from tasks import maintenance  # noqa: F401 - registers the heartbeat thread's start/stop hooks
from tasks import sweeper  # noqa: F401 - registers the periodic task
from tasks.queue import huey

__all__ = ["huey"]
