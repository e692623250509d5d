"""Delivery figures in MongoDB: written once per heartbeat by each consumer, read by `_id`.

`flush` turns a process's tally (webapp.services.monitoring.tally) into one
bulk write of `$inc`/`$max` upserts on the hour, day and totals documents
(webapp.models.delivery_stats): one round trip per heartbeat per consumer,
however many jobs it delivered. Concurrent flushes from many consumers add
up correctly because `$inc` and `$max` are atomic per document.

Reads never scan: the last 60 minutes come from two hour documents, the last
30 days from thirty day documents, each fetched by `_id`. Percentiles come
from the histogram buckets (an estimate at bucket resolution, interpolated
inside the bucket); the maximum is exact.
"""

from datetime import timedelta

from pymongo import UpdateOne

from webapp.models import DeliveryStats
from webapp.services.monitoring.tally import LATENESS_BOUNDS
from webapp.services.monitoring.tally import OUTCOMES
from webapp.timeutil import as_utc
from webapp.timeutil import isoformat_z

TOTALS_ID = "totals"
HOURS_KEPT = timedelta(days=2)
DAYS_KEPT = timedelta(days=400)
BUCKETS = len(LATENESS_BOUNDS) + 1


def hour_id(moment):
    """`_id` of the hour document holding `moment`'s minute (UTC)."""
    return as_utc(moment).strftime("%Y-%m-%dT%H")


def day_id(moment):
    """`_id` of the day document holding `moment` (UTC)."""
    return as_utc(moment).strftime("%Y-%m-%d")


def minute_key(moment):
    """The field prefix of `moment`'s minute inside its hour document."""
    return f"m{as_utc(moment).minute:02d}"


def _collection():
    return DeliveryStats._get_collection()


class _Update:
    """The `$inc` / `$max` of one document, built up minute by minute."""

    def __init__(self, kind):
        self.kind = kind
        self.inc = {}
        self.max = {}

    def add(self, prefix, figures, count_samples=False):
        for name in OUTCOMES:
            value = getattr(figures, name)
            if value:
                self.inc[prefix + name] = self.inc.get(prefix + name, 0) + value
        for index, count in enumerate(figures.late):
            if count:
                key = f"{prefix}late.b{index}"
                self.inc[key] = self.inc.get(key, 0) + count
        if figures.late_max is not None:
            self.inc[prefix + "late_sum"] = self.inc.get(prefix + "late_sum", 0.0) + figures.late_sum
            key = prefix + "late_max"
            self.max[key] = max(self.max.get(key, 0.0), figures.late_max)
        if count_samples:
            samples = sum(figures.late)
            if samples:
                self.inc[prefix + "late_count"] = self.inc.get(prefix + "late_count", 0) + samples

    def document(self):
        update = {"$setOnInsert": {"kind": self.kind}}
        if self.inc:
            update["$inc"] = self.inc
        if self.max:
            update["$max"] = self.max
        return update


def flush(minutes):
    """Add a drained tally ({minute: MinuteFigures}) to the hour, day and totals documents.

    One bulk write, so one round trip. Raises on a database error: the caller
    puts the figures back and tries again at the next heartbeat (if the write
    was in fact applied and only its reply was lost, those figures count twice).
    """
    if not minutes:
        return 0
    updates: dict = {}
    for minute, figures in minutes.items():
        updates.setdefault(hour_id(minute), _Update("hour")).add(minute_key(minute) + ".", figures)
        updates.setdefault(day_id(minute), _Update("day")).add("", figures)
        updates.setdefault(TOTALS_ID, _Update("totals")).add("", figures, count_samples=True)
    requests = [UpdateOne({"_id": doc_id}, update.document(), upsert=True) for doc_id, update in updates.items()]
    _collection().bulk_write(requests, ordered=False)
    return len(requests)


def expire(now):
    """Delete hour documents older than two days and day documents older than 400 days."""
    collection = _collection()
    hours = collection.delete_many({"kind": "hour", "_id": {"$lt": hour_id(now - HOURS_KEPT)}}).deleted_count
    days = collection.delete_many({"kind": "day", "_id": {"$lt": day_id(now - DAYS_KEPT)}}).deleted_count
    return hours + days


def _by_id(ids):
    """The documents with these `_id`s, by `_id` (missing ones are simply absent).

    One `find_one` per `_id` rather than one `_id: {$in: [...]}`: on the embedded
    FerretDB only an `_id` equality reaches the SQLite index, and `$in` decodes
    the whole collection (bench/status.py: 30 day documents in 34 ms one by one,
    596 ms with `$in`). On MongoDB both are index lookups.
    """
    collection = _collection()
    found = (collection.find_one({"_id": doc_id}) for doc_id in sorted(set(ids)))
    return {doc["_id"]: doc for doc in found if doc is not None}


def _buckets(figures):
    late = figures.get("late") or {}
    return [late.get(f"b{index}", 0) for index in range(BUCKETS)]


def percentile(buckets, fraction, maximum):
    """The `fraction` quantile of a histogram, interpolated inside its bucket, never above `maximum`."""
    total = sum(buckets)
    if not total:
        return None
    rank = fraction * total
    cumulative = 0
    for index, count in enumerate(buckets):
        if count and cumulative + count >= rank:
            lower = LATENESS_BOUNDS[index - 1] if index > 0 else 0.0
            upper = LATENESS_BOUNDS[index] if index < len(LATENESS_BOUNDS) else maximum
            estimate = lower + (upper - lower) * (rank - cumulative) / count
            return round(min(estimate, maximum), 3)
        cumulative += count
    return round(maximum, 3)


def lateness_summary(buckets, maximum):
    """{p50, p95, p99, max} in seconds from a histogram and its exact maximum (all None without samples)."""
    if not sum(buckets):
        return {"p50": None, "p95": None, "p99": None, "max": None}
    return {
        "p50": percentile(buckets, 0.50, maximum),
        "p95": percentile(buckets, 0.95, maximum),
        "p99": percentile(buckets, 0.99, maximum),
        "max": round(maximum, 3),
    }


def last_hour(now, minutes=60):
    """Per-minute outcomes for the last `minutes` minutes (oldest first) and their lateness summary.

    Reads the (at most two) hour documents those minutes fall in.
    """
    now = as_utc(now).replace(second=0, microsecond=0)
    moments = [now - timedelta(minutes=back) for back in range(minutes - 1, -1, -1)]
    docs = _by_id({hour_id(moment) for moment in moments})
    rates, buckets, maximum = [], [0] * BUCKETS, 0.0
    for moment in moments:
        figures = docs.get(hour_id(moment), {}).get(minute_key(moment), {})
        rates.append({"minute": isoformat_z(moment), **{name: figures.get(name, 0) for name in OUTCOMES}})
        buckets = [a + b for a, b in zip(buckets, _buckets(figures), strict=True)]
        maximum = max(maximum, figures.get("late_max", 0.0))
    return rates, lateness_summary(buckets, maximum)


def last_days(now, days=30):
    """Per-day outcomes for the last `days` UTC days, today included, oldest first."""
    moments = [as_utc(now) - timedelta(days=back) for back in range(days - 1, -1, -1)]
    docs = _by_id(day_id(moment) for moment in moments)
    return [
        {"day": day_id(moment), **{name: docs.get(day_id(moment), {}).get(name, 0) for name in OUTCOMES}}
        for moment in moments
    ]


def totals():
    """Outcomes and the lateness histogram since the beginning: {sent, failed, retried, buckets, sum, count}."""
    doc = _collection().find_one({"_id": TOTALS_ID}) or {}
    return {
        **{name: doc.get(name, 0) for name in OUTCOMES},
        "buckets": _buckets(doc),
        "sum": doc.get("late_sum", 0.0),
        "count": doc.get("late_count", 0),
    }
