"""What one job costs, counted, not timed: database round trips and Redis commands per job.

From `POST /api/users/jobs` to COMPLETED, with the real parts: the Flask app
(test client), a Huey consumer run in this process (`huey.create_consumer`,
the class `huey_consumer` runs, 4 worker threads, its maintenance thread),
Redis (a redis-server of its own, so INFO commandstats counts nobody else),
FerretDB and an SMTP server. Every MongoDB command is seen by a pymongo
CommandListener registered before any client exists, and charged to the thread
that issued it: the request (the test's thread), the Huey worker threads
(`Worker-N`), or a per-process thread whose cost grows with time, not with
jobs (`maintenance`, the lease renewer, the scheduler's periodic sweep, the
change-mark flusher).

Jobs go one at a time (each due a moment after it is created, so the
scheduled path is the one measured), so everything a worker thread does
between one POST and the COMPLETED status belongs to that job.

Used by tests/delivery/test_delivery_cost.py (which asserts the exact commands) and
bench/delivery_cost.py (which prints them). Runs in a process of its own:
`python -m tests.support.delivery_cost [--mongodb-uri URI] [--jobs N]` prints JSON.
"""

import argparse
import collections
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from pymongo import monitoring  # noqa: E402

# A job with every scheduling field (issue 8): its zone, windows open at every hour of every day
# (so it goes out when due, as the plain job does) and an expiry ("in an hour": an hour after its
# send_at, written as each job is made).
ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
SCHEDULED_FIELDS = {
    "timezone": "Europe/Berlin",
    "windows": [
        {"days": ALL_DAYS, "start": "00:00", "end": "12:00"},
        {"days": ALL_DAYS, "start": "12:00", "end": "00:00"},
    ],
    "expires_at": "in an hour",
}
# Threads whose commands are paid per unit of time, whatever the number of jobs.
# `change-marks`: the process's change-mark flusher (webapp/services/jobs/change_marks.py), one bulk
# write per FLUSH_DELAY at most for every job noted meanwhile, so its cost is per time while jobs
# change, not per job (at one job at a time, as here, it is about one write per job state change).
PER_TIME_THREADS = ("maintenance", "lease-renewer", "Scheduler", "change-marks")


class CommandLog(monitoring.CommandListener):
    """Every command started, as (thread, command, collection, phase)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.phase = "setup"
        self.events = []

    def started(self, event):
        name = event.command_name
        target = event.command.get(name)
        collection = target if isinstance(target, str) else None
        with self.lock:
            self.events.append((threading.current_thread().name, name, collection, self.phase))

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass

    def take(self):
        with self.lock:
            events, self.events = self.events, []
        return events


def redis_commandstats(client):
    """{command: calls} from Redis INFO commandstats, leaving out the INFO calls made to read them."""
    stats = {key.removeprefix("cmdstat_"): value["calls"] for key, value in client.info("commandstats").items()}
    stats.pop("info", None)
    return stats


def _delta(before, after):
    return {
        name: after.get(name, 0) - before.get(name, 0) for name in after if after.get(name, 0) != before.get(name, 0)
    }


def _describe(events):
    """A sorted list of "command collection" strings, one per round trip."""
    return sorted(f"{command} {collection}" if collection else command for _, command, collection, _ in events)


def measure(mongodb_uri=None, jobs=5, due_in=1.5, idle_seconds=4.0, settle_seconds=0.0, env=None, job_fields=None):
    """Create `jobs` jobs one at a time through the API, each due `due_in` s later; count what each costs.

    Starts its own Redis and SMTP server (and FerretDB unless `mongodb_uri`). `settle_seconds`: how
    long each job's window stays open after COMPLETED (work a job leaves for later, such as a lease
    check queued for its lease's expiry, is counted only if it happens within it). `env`: extra
    settings (LEASE_SECONDS, ...). `job_fields`: more fields for each job (SCHEDULED_FIELDS: a zone,
    windows and an expiry). Returns a dict.
    """
    from tests.support.ferretdb import FerretDBServer
    from tests.support.redis_server import RedisServer
    from tests.support.smtp import SmtpTestServer

    tmp = Path(tempfile.mkdtemp(prefix="mailjobs-cost-"))
    started = []
    log = CommandLog()
    monitoring.register(log)  # before any MongoClient exists: every client reports here
    try:
        if mongodb_uri is None:
            ferret = FerretDBServer(
                os.environ.get("FERRETDB_BIN") or str(PROJECT_ROOT / "var/bin/ferretdb"), str(tmp / "db")
            )
            ferret.start()
            started.append(ferret)
            mongodb_uri = ferret.uri
        database = f"mailjobs_cost_{uuid.uuid4().hex[:8]}"
        broker = RedisServer(tmp / "redis.log").start()
        started.append(broker)
        smtp = SmtpTestServer()
        smtp.start()
        started.append(smtp)
        os.environ.update(
            {
                "APP_ENV": "testing",
                "MONGODB_URI": mongodb_uri.rstrip("/") + "/" + database,
                "REDIS_URL": broker.url,
                "HUEY_NAME": f"cost-{uuid.uuid4().hex[:8]}",
                "MAIL_SERVER": "127.0.0.1",
                "MAIL_PORT": str(smtp.port),
                "MAIL_DEFAULT_SENDER": "scheduler@mailjobs.test",
                "LOG_LEVEL": "WARNING",
                **(env or {}),
            }
        )
        return _run(log, broker, smtp, jobs, due_in, idle_seconds, settle_seconds, job_fields or {})
    finally:
        for server in reversed(started):
            server.stop()


def _run(log, broker, smtp, jobs, due_in, idle_seconds, settle_seconds, job_fields):
    import redis
    from pymongo import MongoClient

    import tasks.context
    from tasks.queue import huey
    from webapp.app import create_app
    from webapp.config import load_config
    from webapp.services.accounts import users

    app = create_app(load_config("testing"))
    client = app.test_client()
    redis_client = redis.Redis.from_url(broker.url)
    # The watcher reads job statuses on a client of its own; its commands are left out below.
    watcher = MongoClient(os.environ["MONGODB_URI"], tz_aware=True).get_default_database()
    with app.app_context():
        users.register("cost@example.com", "correct-horse-9")
    token = client.post("/api/auth/login", json={"email": "cost@example.com", "password": "correct-horse-9"})
    headers = {"Authorization": f"Bearer {token.json['access_token']}"}

    # The consumer's threads use this process's app (building a second one would reconnect
    # mongoengine under the requests of the first).
    tasks.context.bind(app)
    consumer = huey.create_consumer(workers=4, worker_type="thread", periodic=False, max_delay=0.25)
    consumer.start()
    try:
        # One job first, not counted: each process creates its indexes on first use of a collection.
        warm_up = client.post(
            "/api/users/jobs", headers=headers, json={"to": "warm-up@example.com", "subject": "warm-up", "body": "b"}
        )
        assert warm_up.status_code == 201, warm_up.get_data(as_text=True)
        _wait_completed(watcher, warm_up.json["id"])
        time.sleep(1.0)  # the workers and the maintenance thread are up, their first beat done
        smtp.clear()
        log.take()
        # Idle: what the consumer costs with nothing to do (per unit of time).
        idle_redis_before = redis_commandstats(redis_client)
        log.phase = "idle"
        time.sleep(idle_seconds)
        idle_events = log.take()
        idle_redis = _delta(idle_redis_before, redis_commandstats(redis_client))

        per_job = []
        for n in range(jobs):
            redis_before = redis_commandstats(redis_client)
            log.phase = "api"
            send_at = datetime.now(UTC) + timedelta(seconds=due_in)
            fields = dict(job_fields)
            if fields.get("expires_at") == "in an hour":
                fields["expires_at"] = (send_at + timedelta(hours=1)).isoformat()
            response = client.post(
                "/api/users/jobs",
                headers=headers,
                json={
                    "to": f"reader-{n}@example.com",
                    "subject": f"cost {n}",
                    "body": "hello",
                    "send_at": send_at.isoformat(),
                    **fields,
                },
            )
            assert response.status_code == 201, response.json
            api_events = log.take()
            log.phase = "delivery"
            started_at = time.monotonic()
            job_id = response.json["id"]
            _wait_completed(watcher, job_id)
            time.sleep(settle_seconds)
            elapsed = time.monotonic() - started_at
            events = log.take()
            redis_after = redis_commandstats(redis_client)
            per_job.append(
                {
                    "api": [e for e in api_events if e[0] == threading.current_thread().name],
                    "worker": [e for e in events if e[0].startswith("Worker-")],
                    "per_time": [e for e in events + api_events if e[0] in PER_TIME_THREADS],
                    "other": [
                        e
                        for e in events + api_events
                        if not e[0].startswith("Worker-")
                        and e[0] not in PER_TIME_THREADS
                        and e[0] != threading.current_thread().name
                    ],
                    "redis": _delta(redis_before, redis_after),
                    "seconds": elapsed,
                }
            )
        smtp.wait_for(jobs, timeout=10)
    finally:
        consumer.stop(graceful=True)
    return _report(per_job, idle_events, idle_redis, idle_seconds, smtp)


def _wait_completed(db, job_id, timeout=15):
    from bson import ObjectId

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = db["jobs"].find_one({"_id": ObjectId(job_id)}, {"status": 1})
        if doc and doc["status"] == "COMPLETED":
            return
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} not COMPLETED within {timeout} s")


def _report(per_job, idle_events, idle_redis, idle_seconds, smtp):
    """Per job: the commands of the request and of the worker; per second: the consumer's own."""
    # The pause flag is read at most once a second per process (webapp.services.delivery.pause), whatever the
    # number of jobs; index creation once per collection and process. Both are left out of the per-job counts.
    pause_reads = [e for job in per_job for e in job["worker"] if e[2] == "controls"]
    one_time = [e for job in per_job for e in job["api"] + job["worker"] if e[1] == "createIndexes"]
    worker_job_commands = [
        [e for e in job["worker"] if e[2] != "controls" and e[1] != "createIndexes"] for job in per_job
    ]
    api_lists = [_describe([e for e in job["api"] if e[1] != "createIndexes"]) for job in per_job]
    worker_lists = [_describe(events) for events in worker_job_commands]
    per_time_seconds = sum(job["seconds"] for job in per_job) + idle_seconds
    per_time_events = idle_events + [e for job in per_job for e in job["per_time"]]
    # Redis: what the jobs' windows saw beyond the idle rate (the workers' blocking reads tick every second).
    redis_job_total = collections.Counter()
    for job in per_job:
        redis_job_total.update(job["redis"])
    seconds_in_jobs = sum(job["seconds"] for job in per_job)
    idle_rate = {name: calls / idle_seconds for name, calls in idle_redis.items()}
    redis_per_job = {
        name: round((calls - idle_rate.get(name, 0) * seconds_in_jobs) / len(per_job), 2)
        for name, calls in redis_job_total.items()
    }
    redis_per_job = {name: value for name, value in redis_per_job.items() if abs(value) >= 0.05}
    round_trips = [len(api) + len(worker) for api, worker in zip(api_lists, worker_lists, strict=True)]
    counts = smtp.count_by_message_id()
    return {
        "jobs": len(per_job),
        "messages": sum(counts.values()),
        "duplicates": sum(n - 1 for n in counts.values()),
        "database_round_trips_per_job": round_trips,
        "api_commands_per_job": api_lists,
        "worker_commands_per_job": worker_lists,
        "worker_pause_flag_reads_total": len(pause_reads),
        "index_creations_total": len(one_time),
        "other_threads": sorted({e[0] for job in per_job for e in job["other"]}),
        "per_time_commands_per_second": {
            thread: round(sum(1 for e in per_time_events if e[0] == thread) / per_time_seconds, 2)
            for thread in sorted({e[0] for e in per_time_events})
        },
        "per_time_commands_seen": dict(collections.Counter(f"{e[0]}: {e[1]} {e[2]}" for e in per_time_events)),
        "redis_commands_per_job": redis_per_job,
        "redis_commands_per_job_total": round(sum(redis_per_job.values()), 2),
        "redis_idle_commands_per_second": {name: round(rate, 2) for name, rate in idle_rate.items()},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mongodb-uri", help="a running FerretDB/MongoDB (default: start a FerretDB)")
    parser.add_argument("--jobs", type=int, default=5)
    parser.add_argument("--settle", type=float, default=0.0, help="seconds each job's window stays open after it")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="an extra setting")
    parser.add_argument("--scheduled", action="store_true", help="jobs with a zone, windows and an expiry")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.set)
    print(
        json.dumps(
            measure(
                args.mongodb_uri,
                args.jobs,
                settle_seconds=args.settle,
                env=env,
                job_fields=SCHEDULED_FIELDS if args.scheduled else None,
            ),
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
