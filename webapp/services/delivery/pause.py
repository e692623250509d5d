"""Pause and resume delivery: one control document, read by every consumer.

While paused, the delivery task does not claim jobs (they stay PENDING,
nothing is rescheduled in a loop) and the sweep does not queue due jobs;
sends already in flight finish. Resume clears the flag and the caller queues
every due job at once (tasks/maintenance.queue_due_now); the atomic claim
still sends each once.

Each process reads the flag through a short cache: "not paused" is trusted
for at most CACHE_SECONDS, "paused" is always read again, so a resume is seen
at once and a pause within CACHE_SECONDS (the maintenance thread also
re-reads it every heartbeat, and reports on its beat which pause it saw:
that is how a caller knows every worker has it).
"""

import logging
import threading
import time

from pymongo.errors import DuplicateKeyError

from webapp.models import DeliveryControl
from webapp.models.control import DELIVERY
from webapp.timeutil import as_utc
from webapp.timeutil import isoformat_z
from webapp.timeutil import utcnow

log = logging.getLogger(__name__)

CACHE_SECONDS = 1.0

_cache_lock = threading.Lock()
_cache: dict = {"paused_at": None, "read_at": float("-inf")}


def _collection():
    return DeliveryControl._get_collection()


def read_pause():
    """The current pause's `paused_at`, or None when delivery runs; refreshes this process's cache."""
    doc = _collection().find_one({"_id": DELIVERY}, {"paused": 1, "paused_at": 1}) or {}
    paused_at = as_utc(doc.get("paused_at")) if doc.get("paused") else None
    with _cache_lock:
        _cache.update(paused_at=paused_at, read_at=time.monotonic())
    return paused_at


def delivery_paused():
    """True while delivery is paused: checked by the delivery task before every claim.

    At most one read per CACHE_SECONDS while delivery runs; every call reads
    while it is paused (nothing is being sent then, and a resume must be seen at once).
    """
    with _cache_lock:
        fresh = _cache["paused_at"] is None and time.monotonic() - _cache["read_at"] <= CACHE_SECONDS
    if fresh:
        return False
    return read_pause() is not None


def record_change(action, actor):
    """The log line of a pause or resume; the views add its audit entry (which needs the client address)."""
    log.warning("delivery %s by %s", action, actor)


def pause(actor):
    """Pause delivery now; pausing again keeps the first pause's time and author. Its `paused_at`."""
    try:
        _collection().update_one(
            {"_id": DELIVERY, "paused": {"$ne": True}},
            {"$set": {"paused": True, "paused_at": utcnow(), "paused_by": actor}},
            upsert=True,
        )
    except DuplicateKeyError:
        pass  # already paused: the upsert found no unpaused document and could not insert a second one
    else:
        record_change("paused", actor)
    return read_pause()


def resume(actor):
    """Let delivery run again; the caller then queues the due jobs."""
    now = utcnow()
    _collection().update_one(
        {"_id": DELIVERY}, {"$set": {"paused": False, "resumed_at": now, "resumed_by": actor}}, upsert=True
    )
    record_change("resumed", actor)
    read_pause()


def pause_state(workers):
    """{paused, paused_at, paused_by, acknowledged_by, workers}: how far a pause has reached.

    `workers` are the live heartbeat records; `acknowledged_by` counts those
    whose latest beat saw this very pause (so no new claim comes from them).
    """
    doc = _collection().find_one({"_id": DELIVERY}) or {}
    paused = bool(doc.get("paused"))
    paused_at = as_utc(doc.get("paused_at")) if paused else None
    live = [record for record in workers if record["alive"]]
    acknowledged = sum(
        1 for record in live if paused and record.get("paused_seen") and as_utc(record["paused_seen"]) == paused_at
    )
    return {
        "paused": paused,
        "paused_at": isoformat_z(paused_at),
        "paused_by": doc.get("paused_by") if paused else None,
        "acknowledged_by": acknowledged,
        "workers": len(live),
    }
