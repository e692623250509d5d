"""The consumer processes: their heartbeats, who is alive, and the clean-up of dead ones.

Each consumer process upserts its own WorkerBeat by `_id` every heartbeat
(tasks/maintenance.py); the status page, /api/health and /metrics read the
whole (small) collection. Alive means heard from within ALIVE_BEATS of the
process's own heartbeat interval, so a reader needs no setting in common
with the workers.
"""

from datetime import timedelta

from webapp.models import WorkerBeat
from webapp.models.worker_beat import ALIVE_BEATS
from webapp.timeutil import as_utc
from webapp.timeutil import isoformat_z
from webapp.timeutil import utcnow

# Dead records stay this long (shown dead), then any live consumer deletes them.
DEAD_KEPT = timedelta(days=1)


def _collection():
    return WorkerBeat._get_collection()


def beat(worker_id, fields):
    """Write this process's heartbeat (`fields`: host, pid, started_at, threads, in_flight, ...)."""
    _collection().update_one({"_id": worker_id}, {"$set": fields}, upsert=True)


def forget(worker_id):
    """Delete this process's record: it is stopping cleanly, so it is not dead, just gone."""
    _collection().delete_one({"_id": worker_id})


def purge_dead(now=None):
    """Delete the records of processes not heard from for DEAD_KEPT; safe to run anywhere, at once."""
    now = now or utcnow()
    return _collection().delete_many({"beat_at": {"$lt": now - DEAD_KEPT}}).deleted_count


def is_alive(record, now):
    """True if the process beat within ALIVE_BEATS of its own heartbeat interval."""
    silence = (now - as_utc(record["beat_at"])).total_seconds()
    return silence <= ALIVE_BEATS * record.get("heartbeat_seconds", 2.0)


def list_workers(now=None):
    """Every recorded consumer process with `alive`, live ones first, then by host and pid."""
    now = now or utcnow()
    records = [{**record, "alive": is_alive(record, now)} for record in _collection().find()]
    return sorted(records, key=lambda r: (not r["alive"], r.get("host", ""), r.get("pid", 0)))


def worker_to_json(record, now=None):
    """A heartbeat record as the API shows it."""
    now = now or utcnow()
    smtp = record.get("smtp") or {}
    return {
        "id": record["_id"],
        "host": record.get("host"),
        "pid": record.get("pid"),
        "started_at": isoformat_z(record.get("started_at")),
        "beat_at": isoformat_z(record.get("beat_at")),
        "seconds_since_beat": round((now - as_utc(record["beat_at"])).total_seconds(), 1),
        "alive": record["alive"],
        "threads": record.get("threads", 0),
        "in_flight": list(record.get("in_flight") or []),
        "paused_seen": isoformat_z(record.get("paused_seen")),
        "smtp": {
            "last_ok_at": isoformat_z(smtp.get("last_ok_at")),
            "last_error": _error_to_json(smtp.get("last_error")),
        },
    }


def _error_to_json(error):
    return {**error, "at": isoformat_z(error.get("at"))} if error else None


def newest_smtp_state(records):
    """The newest SMTP observations across workers: last hand-over, last error, and whether it is OK now.

    `ok` is True when the last hand-over is newer than the last error, False
    when the error is newer, None when nothing was seen yet.
    """
    last_ok, last_error = None, None
    for record in records:
        smtp = record.get("smtp") or {}
        if smtp.get("last_ok_at") and (last_ok is None or as_utc(smtp["last_ok_at"]) > last_ok):
            last_ok = as_utc(smtp["last_ok_at"])
        error = smtp.get("last_error")
        if error and (last_error is None or as_utc(error["at"]) > as_utc(last_error["at"])):
            last_error = error
    if last_error is None:
        ok = True if last_ok else None
    else:
        ok = last_ok is not None and last_ok > as_utc(last_error["at"])
    return {"ok": ok, "last_ok_at": isoformat_z(last_ok), "last_error": _error_to_json(last_error)}
