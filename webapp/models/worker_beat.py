"""Heartbeats of the Huey consumer processes: who is delivering, with how many threads, holding what."""

from mongoengine import BooleanField
from mongoengine import DateTimeField
from mongoengine import DictField
from mongoengine import Document
from mongoengine import FloatField
from mongoengine import IntField
from mongoengine import ListField
from mongoengine import StringField

# A process not heard from for this many of its own heartbeats is shown dead.
ALIVE_BEATS = 3


class WorkerBeat(Document):
    """One consumer process, rewritten by its maintenance thread every `heartbeat_seconds`.

    `_id` is `host:pid`. A process that stops cleanly deletes its record; one
    that dies (kill -9, a lost host) leaves it behind, shown dead, and any
    live consumer deletes it a day later (webapp.services.monitoring.heartbeats).
    """

    id = StringField(primary_key=True)
    host = StringField(required=True)
    pid = IntField(required=True)
    started_at = DateTimeField(required=True)
    beat_at = DateTimeField(required=True)
    heartbeat_seconds = FloatField(required=True)
    # Huey worker threads running in this process (the consumer's -w with -k thread).
    threads = IntField(default=0)
    in_flight = ListField(StringField())
    # The pause (its `paused_at`) this process had seen when it wrote this beat, or None.
    paused_seen = DateTimeField()
    smtp = DictField()
    stopping = BooleanField(default=False)

    meta = {"collection": "worker_beats", "indexes": ["beat_at"]}
