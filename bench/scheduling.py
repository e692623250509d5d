"""What scheduling adds, per operation, at a given number of stored jobs. Prints JSON.

Runs against a real FerretDB (the embedded default, patched as `make run` builds it), with jobs
inserted directly and 200 schedules none of which is due. Median of REPEAT:

- what every sweep and every consumer heartbeat now also runs: the expiry sweep's read (nothing
  expired) and the materializer's query (nothing due);
- what pausing, changing or deleting a schedule runs: cancelling its PENDING occurrences;
- pure functions, in microseconds: a job's effective send time through three windows, the next 5
  runs of a schedule (the Schedules page and `next_runs`), and a catch-up plan for a minutely
  schedule after a week down (`latest`: it looks back a day, not a week).

On MongoDB each query is on an index (see webapp/models/); on FerretDB too with the pushdown
patches (scripts/ferretdb-patches/03, 04), without which they scan the collection and grow with
the jobs. BENCH_SCHEDULING_SIZES (default "1000,10000") sets the job counts.
"""

import json
import os
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

SIZES = [int(size) for size in os.environ.get("BENCH_SCHEDULING_SIZES", "1000,10000").split(",")]
REPEAT = int(os.environ.get("BENCH_REPEAT", "10"))


def timed(action, repeat=REPEAT, scale=1000):
    """Median of `action()` over `repeat` runs after one warm-up, in ms (scale 1000) or µs (1e6)."""
    return round(statistics.median(timed_runs(action, repeat, scale=scale)), 2)


def seed_jobs(count, now):
    from bson import ObjectId

    from webapp.models import Job

    statuses = ["PENDING", "COMPLETED", "COMPLETED", "COMPLETED", "FAILED", "CANCELLED"]
    docs = [
        {
            "_id": ObjectId(),
            "owner_id": ObjectId(),
            "to": ["r@example.com"],
            "subject": "s",
            "body": "b" * 200,
            "status": statuses[n % len(statuses)],
            "send_at": now + timedelta(hours=n % 48),
            "next_attempt_at": now + timedelta(hours=n % 48),
            "expires_at": now + timedelta(days=3),
            "attempts": 0,
            "max_attempts": 5,
            "message_id": f"<bench-{n}@x>",
            "created_at": now,
            "updated_at": now,
        }
        for n in range(count)
    ]
    for start in range(0, len(docs), 1000):
        Job._get_collection().insert_many(docs[start : start + 1000])


def seed_schedules(now):
    from bson import ObjectId

    from webapp.models import Schedule

    Schedule._get_collection().insert_many(
        [
            {
                "owner_id": ObjectId(),
                "to": ["r@example.com"],
                "subject": "s",
                "body": "b",
                "cron": "0 9 * * *",
                "timezone": "Europe/Berlin",
                "windows": [],
                "catch_up": "latest",
                "status": "active",
                "version": 0,
                "runs": 1,
                "cursor_at": now,
                "planned": [],
                "due_at": now + timedelta(hours=1 + n % 24),
                "created_at": now,
                "updated_at": now,
            }
            for n in range(200)
        ]
    )


def pure_figures(now):
    from webapp.services.recurring import occurrences
    from webapp.services.scheduling import recurrence
    from webapp.services.scheduling import timing

    berlin = timing.zone("Europe/Berlin")
    windows = timing.windows_from(
        [
            {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "12:00"},
            {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "13:00", "end": "17:00"},
            {"days": ["sat"], "start": "10:00", "end": "12:00"},
        ]
    )
    saturday_evening = datetime(2031, 7, 5, 18, 0, tzinfo=UTC)
    week_down = {
        "_id": "bench",
        "cron": "* * * * *",
        "timezone": "Europe/Berlin",
        "catch_up": "latest",
        "runs": 0,
        "cursor_at": now - timedelta(days=7),
        "windows": [],
    }
    settings = occurrences.MaterializeSettings()
    return {
        "effective_send_at_three_windows_us": timed(
            lambda: timing.next_opening(saturday_evening, windows, berlin), repeat=200, scale=1e6
        ),
        "next_5_runs_weekdays_at_9_us": timed(
            lambda: recurrence.next_runs("0 9 * * 1-5", berlin, now, 5), repeat=200, scale=1e6
        ),
        "catch_up_plan_minutely_after_a_week_down_ms": timed(
            lambda: occurrences.plan_occurrences(week_down, now, settings), repeat=5
        ),
    }


def measure(size, now):
    from bson import ObjectId

    from webapp.services.delivery import expiry
    from webapp.services.recurring import occurrences
    from webapp.services.recurring import schedules

    settings = occurrences.MaterializeSettings()
    return {
        "jobs": size,
        "expiry_sweep_nothing_expired_ms": timed(lambda: expiry.expire_pending(now)),
        "materializer_pass_nothing_due_ms": timed(lambda: occurrences.materialize_due(now, settings)),
        "cancel_pending_occurrences_ms": timed(lambda: schedules.cancel_pending_occurrences(ObjectId(), now)),
    }


def main():
    tmp = Path(tempfile.mkdtemp(prefix="mailjobs-bench-scheduling-"))
    ferret = FerretDBServer(os.environ.get("FERRETDB_BIN") or str(ROOT / "var/bin/ferretdb"), str(tmp / "db"))
    ferret.start()
    os.environ.update(
        {
            "APP_ENV": "development",
            "MONGODB_URI": ferret.uri + "mailjobs_bench_scheduling",
            "HUEY_SQLITE_PATH": str(tmp / "huey.db"),
            "HUEY_NAME": "bench-scheduling",
            "LOG_LEVEL": "WARNING",
        }
    )
    os.environ.pop("REDIS_URL", None)
    try:
        from webapp.app import create_app
        from webapp.config import load_config

        app = create_app(load_config("development"))
        now = datetime.now(UTC)
        results, stored = [], 0
        with app.app_context():
            seed_schedules(now)
            for size in SIZES:
                seed_jobs(size - stored, now)
                stored = size
                results.append(measure(size, now))
            pure = pure_figures(now)
    finally:
        ferret.stop()
    print(
        json.dumps(
            {
                "benchmark": "scheduling",
                "stack": f"embedded FerretDB (SQLite, patched), median of {REPEAT}",
                "by_size": results,
                "ratio_largest_to_smallest": ratios_largest_to_smallest(results),
                "pure": pure,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
