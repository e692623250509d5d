"""What bench/reads.py runs inside the app of a given checkout (this one, or a baseline's): prints JSON.

Run with that checkout as the working directory (it is copied there for a baseline) and
MONGODB_URI set:

    python -m bench.in_app indexes       # build every index webapp/models/ declares, timed
    python -m bench.in_app sweep RUNS    # the periodic sweep (tasks/sweeper.sweep_once), timed
    python -m bench.in_app counts RUNS   # jobs per status over all jobs: counted now, and kept (read by _id)

`sweep` gives the sweep the same work at every size before each run (none of it timed): SWEEP_DUE
PENDING jobs due 10 minutes ago (queued again each time) and SWEEP_EXPIRED RUNNING jobs whose
lease has run out (recovered each time), with Huey's queue emptied before each run; the rest of the stored jobs are finished or in the future,
which the sweep must not pay for. Where the checkout has retention (webapp.services.jobs.retention),
`sweep` also times one retention batch with RETENTION_BACKLOG finished jobs past the cutoff.
Only public functions of the app are used, so the same file runs in older checkouts.
"""

import importlib
import inspect
import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))

SWEEP_DUE = 20
SWEEP_EXPIRED = 5
RETENTION_BACKLOG = 1000


def _app():
    from webapp.app import create_app

    return create_app()


def percentiles(samples):
    """{p50_ms, p95_ms, max_ms, n}: nearest rank."""
    ordered = sorted(samples)

    def rank(p):
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]

    return {
        "p50_ms": round(rank(50), 2),
        "p95_ms": round(rank(95), 2),
        "max_ms": round(ordered[-1], 2),
        "n": len(ordered),
    }


def build_indexes():
    """Create every declared index now (the web workers and the consumer would each try at first use)."""
    import mongoengine

    models = importlib.import_module("webapp.models")
    documents = [
        value
        for value in vars(models).values()
        if inspect.isclass(value) and issubclass(value, mongoengine.Document) and value._meta.get("collection")
    ]
    app = _app()
    start = time.perf_counter()
    with app.app_context():
        for document in documents:
            document.ensure_indexes()
    return {
        "indexes_s": round(time.perf_counter() - start, 2),
        "models": sorted(document.__name__ for document in documents),
    }


def _stage_sweep_work(jobs, now, finished_ids, pending_ids):
    """Make SWEEP_DUE jobs due and SWEEP_EXPIRED leases expired again (the sweep undoes both)."""
    jobs.update_many(
        {"_id": {"$in": pending_ids}}, {"$set": {"status": "PENDING", "next_attempt_at": now - timedelta(minutes=10)}}
    )
    jobs.update_many(
        {"_id": {"$in": finished_ids}},
        {
            "$set": {
                "status": "RUNNING",
                "lease_token": "bench-expired",
                "lease_owner": "bench-dead",
                "lease_expires_at": now - timedelta(minutes=1),
                "delivery_stage": "claimed",
                "next_attempt_at": now - timedelta(minutes=5),
            },
            "$unset": {"sent_at": ""},
        },
    )


def time_sweep(runs):
    """The periodic sweep, `runs` times, each with the same staged work; then one retention batch."""
    from tasks.queue import huey
    from tasks.sweeper import sweep_once
    from webapp.models import Job
    from webapp.timeutil import utcnow

    app = _app()
    result = {}
    with app.app_context():
        jobs = Job._get_collection()
        # The staged work: pending jobs far in the future, made due; finished ones, made stale RUNNING.
        pending_ids = [doc["_id"] for doc in jobs.find({"status": "PENDING"}, {"_id": 1}).limit(SWEEP_DUE)]
        finished_ids = [doc["_id"] for doc in jobs.find({"status": "COMPLETED"}, {"_id": 1}).limit(SWEEP_EXPIRED)]
        samples, outcomes = [], []
        for _ in range(runs + 1):
            _stage_sweep_work(jobs, utcnow(), finished_ids, pending_ids)
            # An empty queue each time: the tasks the last run queued would otherwise count as a
            # backlog (the sweep then queues nothing), and every run must do the same work.
            huey.flush()
            start = time.perf_counter()
            outcome = sweep_once(app)
            samples.append((time.perf_counter() - start) * 1000)
            outcomes.append(outcome)
        result["sweep"] = {
            **percentiles(samples[1:]),
            "first_ms": round(samples[0], 1),
            "work": outcomes[-1],
            "same_work_every_run": all(outcome == outcomes[-1] for outcome in outcomes),
        }
        result["retention"] = time_retention(app, jobs)
    return result


def time_retention(app, jobs):
    """One retention batch with RETENTION_BACKLOG finished jobs past the cutoff; None without retention."""
    try:
        retention = importlib.import_module("webapp.services.jobs.retention")
    except ImportError:
        return None
    from bson import ObjectId

    from webapp.timeutil import utcnow

    days = app.config["RETENTION_DAYS"]
    old = utcnow() - timedelta(days=days + 30)
    template = jobs.find_one({"status": "COMPLETED"}, {"_id": 0})
    backlog = [
        {**template, "_id": ObjectId(), "created_at": old, "updated_at": old, "send_at": old, "sent_at": old}
        for _ in range(RETENTION_BACKLOG)
    ]
    jobs.insert_many(backlog)
    samples = []
    deleted = 0
    while True:
        start = time.perf_counter()
        count = retention.purge_batch(days)
        samples.append((time.perf_counter() - start) * 1000)
        deleted += count
        if count == 0:
            break
    return {
        "batch": percentiles(samples[:-1]),
        "idle_ms": round(samples[-1], 2),
        "deleted": deleted,
        "batches": len(samples) - 1,
        "backlog": RETENTION_BACKLOG,
    }


def _timed(action, runs):
    action()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return percentiles(samples)


def time_counts(runs):
    """Jobs per status over all jobs, both ways: counted from the status index now, and the kept document.

    `kept_read` is what a page pays between recounts (one read by `_id`); `live` what a recount costs
    (and what every read paid before). None where the checkout keeps no counts.
    """
    from webapp.services.jobs import actions

    app = _app()
    with app.app_context():
        result = {"live": _timed(actions.status_counts, runs)}
        try:
            job_counts = importlib.import_module("webapp.services.monitoring.job_counts")
        except ImportError:
            return {**result, "kept_read": None}
        job_counts.recount()
        result["kept_read"] = _timed(lambda: job_counts.read(3600), runs)
    return result


def main():
    what = sys.argv[1]
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if what == "indexes":
        print(json.dumps(build_indexes()))
    elif what == "sweep":
        print(json.dumps(time_sweep(int(sys.argv[2]) if len(sys.argv) > 2 else 10)))
    elif what == "counts":
        print(json.dumps(time_counts(int(sys.argv[2]) if len(sys.argv) > 2 else 30)))
    else:
        raise SystemExit(f"unknown command {what!r}")


if __name__ == "__main__":
    main()
