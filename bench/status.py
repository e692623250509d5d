"""What the status page, /api/admin/stats and /metrics cost, at a given number of stored jobs. Prints JSON.

Runs against a real FerretDB (the embedded default, patched as `make run` builds it). Jobs are inserted
directly (mixed statuses, some overdue), the figures documents are filled as 48 busy hours and 30 busy
days would leave them, and three heartbeat records stand in for consumers. Then, median of REPEAT:

- the heartbeat's writes: one flush of a minute's figures (one bulk write), one heartbeat upsert;
- each read of the stats: counts, overdue, the last hour (2 hour documents), the last 30 days
  (30 day documents, `_id: {$in}` against 30 reads by `_id`), the heartbeats;
- whole requests: GET /api/admin/stats, the status board poll answered 304, GET /metrics;
- the layout the figures do not use, as a baseline: one document per day with every minute in it
  (1,440 minutes), updated with `$inc` and read back.

BENCH_STATUS_SIZES (default "1000,10000") sets the job counts.
"""

import json
import os
import random
import statistics
import sys
import tempfile
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.measure import ratios_largest_to_smallest  # noqa: E402
from bench.measure import timed_runs  # noqa: E402
from tests.support.ferretdb import FerretDBServer  # noqa: E402

SIZES = [int(size) for size in os.environ.get("BENCH_STATUS_SIZES", "1000,10000").split(",")]
REPEAT = int(os.environ.get("BENCH_REPEAT", "10"))


def timed(action, repeat=REPEAT):
    """Median milliseconds of `action()` over `repeat` runs (after one warm-up)."""
    return round(statistics.median(timed_runs(action, repeat)), 2)


def busy_minute(seed):
    from webapp.services.monitoring.tally import MinuteFigures

    rng = random.Random(seed)
    figures = MinuteFigures(sent=rng.randint(50, 300), failed=rng.randint(0, 3), retried=rng.randint(0, 8))
    for _ in range(figures.sent):
        figures.late[rng.randint(0, 6)] += 1
    figures.late_sum, figures.late_max = figures.sent * 0.08, rng.uniform(0.2, 2.0)
    return figures


def seed_figures(now):
    """48 hours of busy minutes (hour documents) and 30 busy days, written the way consumers write them."""
    from webapp.services.monitoring import delivery_stats

    start = now.replace(second=0, microsecond=0) - timedelta(hours=48)
    minutes = {start + timedelta(minutes=m): busy_minute(m) for m in range(48 * 60)}
    delivery_stats.flush(minutes)
    days = {now - timedelta(days=d): busy_minute(d) for d in range(2, 30)}
    delivery_stats.flush(days)


def seed_jobs(count, now):
    from bson import ObjectId

    from webapp.models import Job

    statuses = ["COMPLETED"] * 80 + ["PENDING"] * 12 + ["FAILED"] * 4 + ["CANCELLED"] * 3 + ["IN_DOUBT"]
    rng = random.Random(count)
    batch = []
    for n in range(count):
        status = rng.choice(statuses)
        due = now + timedelta(minutes=rng.randint(-600, 6000)) if status == "PENDING" else now - timedelta(days=1)
        batch.append(
            {
                "_id": ObjectId(),
                "owner_id": ObjectId(),
                "to": ["r@example.com"],
                "subject": f"Bench {n}",
                "body": "b" * 200,
                "send_at": due,
                "status": status,
                "attempts": 1,
                "max_attempts": 5,
                "next_attempt_at": due,
                "message_id": f"<bench-{n}@example.com>",
                "created_at": now,
                "updated_at": now,
                "attempts_log": [],
            }
        )
        if len(batch) == 1000:
            Job._get_collection().insert_many(batch)
            batch = []
    if batch:
        Job._get_collection().insert_many(batch)


def seed_workers(now):
    from webapp.services.monitoring import heartbeats

    for n in range(3):
        heartbeats.beat(
            f"bench-host:{n}",
            {
                "host": "bench-host",
                "pid": n,
                "started_at": now,
                "beat_at": now,
                "heartbeat_seconds": 3600.0,
                "threads": 4,
                "in_flight": [],
                "paused_seen": None,
                "smtp": {"last_ok_at": now, "last_error": None},
            },
        )


def per_day_layout(collection, now):
    """The baseline layout: one document per day holding all 1,440 minutes; its write and read cost."""
    doc = {"_id": "day"}
    for minute in range(1440):
        key = f"m{minute:04d}"
        doc[key] = {
            "sent": 120,
            "failed": 1,
            "retried": 2,
            "late": {f"b{i}": 17 for i in range(7)},
            "late_max": 1.2,
            "late_sum": 9.6,
        }
    collection.insert_one(doc)
    write = timed(
        lambda: collection.update_one(
            {"_id": "day"}, {"$inc": {"m0931.sent": 3, "m0931.late.b2": 3}, "$max": {"m0931.late_max": 0.4}}
        )
    )
    read = timed(lambda: collection.find_one({"_id": "day"}))
    return {"document_kb": round(len(json.dumps(doc)) / 1024), "inc_one_minute_ms": write, "read_ms": read}


def measure(app, client, headers, admin_pages_etag, size):
    from webapp.models import Job
    from webapp.models import WorkerBeat
    from webapp.services.jobs import actions
    from webapp.services.monitoring import delivery_stats
    from webapp.services.monitoring import heartbeats
    from webapp.services.monitoring import stats

    now = datetime.now(UTC)
    day_ids = [delivery_stats.day_id(now - timedelta(days=d)) for d in range(30)]
    stats_collection = delivery_stats._collection()
    with app.app_context():
        result = {
            "jobs_stored": Job._get_collection().estimated_document_count(),
            "heartbeat_flush_ms": timed(lambda: delivery_stats.flush({now: busy_minute(1)})),
            "heartbeat_upsert_ms": timed(lambda: heartbeats.beat("bench-host:0", {"beat_at": datetime.now(UTC)})),
            "status_counts_ms": timed(actions.status_counts),
            "overdue_ms": timed(lambda: stats.overdue(now, 300)),
            "last_hour_ms": timed(lambda: delivery_stats.last_hour(now)),
            "last_30_days_in_ms": timed(lambda: list(stats_collection.find({"_id": {"$in": day_ids}}))),
            "last_30_days_one_by_one_ms": timed(lambda: [stats_collection.find_one({"_id": i}) for i in day_ids]),
            "heartbeats_ms": timed(lambda: list(WorkerBeat._get_collection().find())),
        }
    result["api_admin_stats_ms"] = timed(lambda: client.get("/api/admin/stats", headers=headers))
    result["board_poll_304_ms"] = timed(
        lambda: client.get("/admin/status/board", headers={"HX-Request": "true", "If-None-Match": admin_pages_etag()})
    )
    result["metrics_ms"] = timed(lambda: client.get("/metrics"))
    result["size"] = size
    return result


def main():
    tmp = Path(tempfile.mkdtemp(prefix="mailjobs-bench-status-"))
    ferret = FerretDBServer(os.environ.get("FERRETDB_BIN") or str(ROOT / "var/bin/ferretdb"), str(tmp / "db"))
    ferret.start()
    os.environ.update(
        {
            "APP_ENV": "development",
            "MONGODB_URI": ferret.uri + "mailjobs_bench_status",
            "HUEY_SQLITE_PATH": str(tmp / "huey.db"),
            "HUEY_NAME": "bench-status",
            "LOG_LEVEL": "WARNING",
        }
    )
    os.environ.pop("REDIS_URL", None)
    try:
        from webapp.app import create_app
        from webapp.config import load_config
        from webapp.services.accounts import users

        app = create_app(load_config("development"))
        app.config["WTF_CSRF_ENABLED"] = False
        client = app.test_client()
        now = datetime.now(UTC)
        with app.app_context():
            users.create_or_promote_admin("bench@example.com", "bench-password")
            seed_figures(now)
            seed_workers(now)
        token = client.post("/api/auth/login", json={"email": "bench@example.com", "password": "bench-password"})
        headers = {"Authorization": f"Bearer {token.json['access_token']}"}
        client.post("/login", data={"email": "bench@example.com", "password": "bench-password", "timezone": "UTC"})

        def board_etag():
            return client.get("/admin/status/board", headers={"HX-Request": "true"}).headers["ETag"]

        etag = {"value": None}

        def current_etag():
            etag["value"] = etag["value"] or board_etag()
            return etag["value"]

        results, stored = [], 0
        for size in SIZES:
            with app.app_context():
                seed_jobs(size - stored, now)
            stored = size
            etag["value"] = None
            results.append(measure(app, client, headers, current_etag, size))
        with app.app_context():
            from webapp.models import DeliveryStats

            layout = per_day_layout(DeliveryStats._get_collection().database["bench_per_day_layout"], now)
    finally:
        ferret.stop()
    print(
        json.dumps(
            {
                "benchmark": "status",
                "stack": f"embedded FerretDB (SQLite, patched), Flask test client, median of {REPEAT}",
                "by_size": results,
                "ratio_largest_to_smallest": ratios_largest_to_smallest(results),
                "baseline_one_document_per_day_with_1440_minutes": layout,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
