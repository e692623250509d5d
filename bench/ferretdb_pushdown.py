"""The app's database queries at 1,000 and 100,000 jobs, with and without SQLite pushdown. Prints JSON.

FerretDB (this repo's build, var/bin/ferretdb or FERRETDB_BIN) gets job-shaped documents,
seeded quickly with insert_many, and the indexes declared in webapp/models/. The app's own
service functions then run against it (the queries are the app's, as mongoengine and
pymongo send them), each timed RUNS times:

- `list_owner_10` / `list_owner_big`: one page of a user's jobs, newest first, with the total
  (a user with 10 jobs, and one with 10% of all jobs: 10,000 at 100k);
- `list_owner_big_page5`: the same user's fifth page;
- `list_owner_big_pending`: that user's PENDING jobs, page 1;
- `admin_list` / `admin_list_failed`: everyone's jobs (all, or FAILED ones: 3%), page 1;
- `counts_all` / `counts_owner`: jobs per status (all, or the big user's);
- `due_jobs`: the sweep's PENDING jobs due for more than 5 s, oldest first;
- `expired_leases`: the sweep's RUNNING jobs whose lease ran out;
- `conditional_update`: renewing a lease (update by _id, status and lease token).

Baseline, in the same run, on the same data: the same binary restarted with
`--test-disable-pushdown`, so the handler reads every document and filters, sorts and counts
in Go (the unpatched path; BENCH_BASELINE_FERRETDB=path runs another binary instead, e.g. a
build with patches 01 and 02 only). The baseline runs BENCH_BASELINE_RUNS times (default 3,
and once above 10,000 jobs: a query takes tens of seconds there; 0 skips it).

    .venv/bin/python -m bench.ferretdb_pushdown
    BENCH_SIZES=1000 .venv/bin/python -m bench.ferretdb_pushdown   # quick

Reported per size and query: the first run after the server started (it includes the one
scan of the table that learns which kinds of values each queried field holds), then p50/p95
in ms over RUNS runs (pushdown), p50 in ms (baseline), the speedup; and per query the 100k/1k
ratios of the pushdown p50 and p95.
"""

import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.measure import timed_runs as timed  # noqa: E402
from tests.support.ferretdb import FerretDBServer  # noqa: E402

BINARY = os.environ.get("FERRETDB_BIN") or str(ROOT / "var" / "bin" / "ferretdb")
BASELINE_BINARY = os.environ.get("BENCH_BASELINE_FERRETDB")
SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "1000,100000").split(",")]
RUNS = int(os.environ.get("BENCH_RUNS", "30"))
BASELINE_RUNS = os.environ.get("BENCH_BASELINE_RUNS")  # default: 3, and 1 above 10,000 jobs
# indexes beyond webapp/models/ ("owner_id,status,-created_at;status,-created_at"), to try some
EXTRA_INDEXES = [
    [(f.lstrip("-"), -1 if f.startswith("-") else 1) for f in spec.split(",")]
    for spec in os.environ.get("BENCH_EXTRA_INDEXES", "").split(";")
    if spec
]
SMALL_OWNER_JOBS = 10
BIG_OWNER_SHARE = 0.1
DUE_JOBS = 50


def job_documents(size, owners, now):
    """Job-shaped documents as the app stores them (field types as in webapp/models/job.py)."""
    from bson import ObjectId

    rng = random.Random(size)
    small, big, others = owners
    n_big = int(size * BIG_OWNER_SHARE)
    statuses = ["COMPLETED"] * 80 + ["PENDING"] * 15 + ["FAILED"] * 3 + ["CANCELLED"] * 1 + ["RUNNING"] * 1
    for i in range(size):
        if i < SMALL_OWNER_JOBS:
            owner = small
        elif i < SMALL_OWNER_JOBS + n_big:
            owner = big
        else:
            owner = rng.choice(others)
        created = now - timedelta(days=60) + timedelta(seconds=i * 60 * 24 * 60 * 60 / size)
        status = rng.choice(statuses)
        send_at = created + timedelta(minutes=rng.randrange(0, 600))
        next_attempt = send_at if status != "PENDING" else now + timedelta(minutes=rng.randrange(1, 6000))
        job_id = ObjectId()
        doc = {
            "_id": job_id,
            "owner_id": owner,
            "to": ["reader@example.com"],
            "subject": f"Report {i}",
            "body": "Hello,\n\nthe weekly figures are attached.\n\n" + "x" * rng.randrange(100, 400),
            "send_at": send_at,
            "status": status,
            "attempts": 1,
            "max_attempts": 5,
            "next_attempt_at": next_attempt,
            "message_id": f"<job-{job_id}@mailjobs.test>",
            "created_at": created,
            "updated_at": created,
            "attempts_log": [
                {"number": 1, "worker": "w1", "started_at": send_at, "finished_at": send_at, "outcome": "sent"}
            ],
        }
        if status == "COMPLETED":
            doc["sent_at"] = send_at
        yield doc


def seed(uri, size, now):
    """Fill a fresh database; returns the owners and a RUNNING job holding a lease."""
    import pymongo
    from bson import ObjectId

    from webapp.models import Job

    owners = (ObjectId(), ObjectId(), [ObjectId() for _ in range(100)])
    client = pymongo.MongoClient(uri)
    coll = client.mailjobs_bench.jobs
    for spec in Job._meta["index_specs"]:
        coll.create_index(spec["fields"], **{k: v for k, v in spec.items() if k in ("unique", "sparse")})
    for extra in EXTRA_INDEXES:
        coll.create_index(extra)
    batch = []
    for doc in job_documents(size, owners, now):
        batch.append(doc)
        if len(batch) == 1000:
            coll.insert_many(batch)
            batch = []
    if batch:
        coll.insert_many(batch)
    # a few jobs overdue (the sweep finds them), and one RUNNING job whose lease we renew
    due = coll.find({"status": "PENDING"}, {"_id": 1}).limit(DUE_JOBS)
    coll.update_many(
        {"_id": {"$in": [d["_id"] for d in due]}}, {"$set": {"next_attempt_at": now - timedelta(minutes=5)}}
    )
    # the newest RUNNING job: a scan that stops at the first match reads (nearly) every document
    leased = coll.find_one({"status": "RUNNING"}, sort=[("created_at", -1)])
    coll.update_one(
        {"_id": leased["_id"]},
        {"$set": {"lease_token": "bench", "lease_owner": "w1", "lease_expires_at": now + timedelta(minutes=5)}},
    )
    client.close()
    return owners, {"_id": leased["_id"], "lease_token": "bench"}


def shapes(owners, leased):
    """The app's queries, by name: each a function that runs one."""
    from webapp.services.delivery import attempts
    from webapp.services.delivery import recovery
    from webapp.services.jobs import actions

    small, big, _ = owners
    settings = SimpleNamespace(in_doubt_policy="resend")
    return {
        "list_owner_10": lambda: actions.list_jobs(owner_id=small, page=1, per_page=20),
        "list_owner_big": lambda: actions.list_jobs(owner_id=big, page=1, per_page=20),
        "list_owner_big_page5": lambda: actions.list_jobs(owner_id=big, page=5, per_page=20),
        "list_owner_big_pending": lambda: actions.list_jobs(owner_id=big, status="PENDING", page=1, per_page=20),
        "admin_list": lambda: actions.list_jobs(page=1, per_page=20),
        "admin_list_failed": lambda: actions.list_jobs(status="FAILED", page=1, per_page=20),
        "counts_all": lambda: actions.status_counts(),
        "counts_owner": lambda: actions.status_counts(owner_id=big),
        "due_jobs": lambda: recovery.due_unqueued_jobs(),
        "expired_leases": lambda: recovery.recover_expired_leases(settings),
        "conditional_update": lambda: attempts.renew_leases([(leased, 300, False)]),
    }


def p95(values):
    """The 95th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def measure(server, runs, queries, warm_up=True):
    """Time every query against a running server."""
    from webapp import db

    db.connect(server.uri + "mailjobs_bench")
    try:
        return {name: timed(fn, runs, warm_up) for name, fn in queries.items()}
    finally:
        import mongoengine

        mongoengine.disconnect()


def run_size(size, tmp):
    """Seed `size` jobs once; time the queries with pushdown, then on the baseline."""
    from webapp.timeutil import utcnow

    data = tmp / f"data-{size}"
    now = utcnow()
    server = FerretDBServer(BINARY, str(data))
    server.start()
    try:
        start = time.perf_counter()
        owners, leased = seed(server.uri, size, now)
        seed_s = time.perf_counter() - start
    finally:
        server.stop()  # and start afresh: no write-ahead log left to checkpoint, nothing cached
    queries = shapes(owners, leased)
    server.start()
    try:
        first = measure(server, 1, queries, warm_up=False)
        pushed = measure(server, RUNS, queries, warm_up=False)
    finally:
        server.stop()
    if BASELINE_BINARY:
        baseline_server = FerretDBServer(BASELINE_BINARY, str(data))
    else:
        baseline_server = FerretDBServer(BINARY, str(data), extra_args=["--test-disable-pushdown"])
    baseline_runs = int(BASELINE_RUNS or (3 if size <= 10_000 else 1))
    baseline = {name: [float("nan")] for name in queries}
    if baseline_runs:
        baseline_server.start()
        try:
            # no warm-up at large sizes: a query takes seconds, and it reads everything anyway
            baseline = measure(baseline_server, baseline_runs, queries, warm_up=size <= 10_000)
        finally:
            baseline_server.stop()
    result = {"jobs": size, "seed_s": round(seed_s, 1), "baseline_runs": baseline_runs, "queries": {}}
    for name in queries:
        p50 = statistics.median(pushed[name])
        base = statistics.median(baseline[name])
        result["queries"][name] = {
            "first_ms": round(first[name][0], 1),
            "p50_ms": round(p50, 2),
            "p95_ms": round(p95(pushed[name]), 2),
            "baseline_p50_ms": round(base, 1),
            "speedup": round(base / p50, 1),
        }
    return result


def main():
    """Run every size, print the report."""
    tmp = Path(tempfile.mkdtemp(prefix="mailjobs-bench-pushdown-"))
    try:
        results = [run_size(size, tmp) for size in SIZES]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report = {
        "bench": "ferretdb_pushdown",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
        "binary": BINARY,
        "baseline": BASELINE_BINARY or "same binary, --test-disable-pushdown",
        "extra_indexes": EXTRA_INDEXES,
        "runs": RUNS,
        "sizes": results,
    }
    if len(results) >= 2:
        small, large = results[0], results[-1]
        for stat in ("p50", "p95"):
            report[f"ratio_{large['jobs']}_over_{small['jobs']}_{stat}"] = {
                name: round(large["queries"][name][f"{stat}_ms"] / small["queries"][name][f"{stat}_ms"], 2)
                for name in small["queries"]
            }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
