"""How late does a scheduled email reach the SMTP server? Prints JSON.

Runs the embedded stack's parts for real: FerretDB, Huey on SQLite with a
real consumer process, an SMTP server, and the API (Flask test client).
Two variants in the same run, so the machine's noise hits both:

- `lead`: our setting (SCHEDULE_LEAD_SECONDS=1): the task is queued a second
  early and the worker waits out the rest;
- `plain_eta` (baseline): the task is queued for exactly `send_at`, as plain
  Huey scheduling does, so it waits for the scheduler's next one-second tick.

Lateness = arrival at the SMTP server - send_at, for JOBS jobs each.
"""

import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.consumer import HueyConsumer  # noqa: E402
from tests.support.ferretdb import FerretDBServer  # noqa: E402
from tests.support.ferretdb import free_port  # noqa: E402
from tests.support.smtp import SmtpTestServer  # noqa: E402

JOBS = int(os.environ.get("BENCH_JOBS", "20"))
SPACING = 0.3  # seconds between consecutive send_at values


def summary(values):
    ordered = sorted(values)
    return {
        "median_s": round(statistics.median(ordered), 3),
        "p90_s": round(ordered[int(0.9 * (len(ordered) - 1))], 3),
        "max_s": round(ordered[-1], 3),
        "min_s": round(ordered[0], 3),
    }


def run_variant(name, lead, tmp, smtp, env):
    from webapp import create_app
    from webapp.config import load_config

    os.environ["SCHEDULE_LEAD_SECONDS"] = str(lead)
    app = create_app(load_config("development"))
    client = app.test_client()
    email = f"bench-{name}-{time.time_ns()}@example.com"
    client.post("/api/auth/register", json={"email": email, "password": "bench-password"})
    token = client.post("/api/auth/login", json={"email": email, "password": "bench-password"}).json["access_token"]
    headers = {"Authorization": f"Bearer {token}"}

    consumer = HueyConsumer({**env, "SCHEDULE_LEAD_SECONDS": str(lead)}, tmp / f"consumer-{name}.log").start()
    smtp.clear()
    try:
        time.sleep(1.0)  # let the consumer settle
        first = datetime.now(UTC) + timedelta(seconds=3)
        due = {}
        for i in range(JOBS):
            send_at = first + timedelta(seconds=i * SPACING)
            body = {"to": "reader@example.com", "subject": f"{name} {i}", "body": "b",
                    "send_at": send_at.isoformat().replace("+00:00", "Z")}
            job = client.post("/api/users/jobs", json=body, headers=headers).json
            due[job["message_id"]] = datetime.fromisoformat(job["send_at"]).timestamp()
        messages = smtp.wait_for(JOBS, timeout=60 + JOBS * SPACING)
    finally:
        consumer.stop()
    lateness = [m.received_at - due[m.message_id] for m in messages if m.message_id in due]
    return {**summary(lateness), "jobs": len(lateness), "early": sum(1 for x in lateness if x < 0)}


def main():
    tmp = Path(tempfile.mkdtemp(prefix="mailjobs-bench-"))
    ferret = FerretDBServer(os.environ.get("FERRETDB_BIN") or str(ROOT / "var/bin/ferretdb"), str(tmp / "db"))
    ferret.start()
    smtp = SmtpTestServer(port=free_port())
    smtp.start()
    env = {
        **os.environ,
        "APP_ENV": "development",
        "MONGODB_URI": ferret.uri + "mailjobs_bench",
        "HUEY_SQLITE_PATH": str(tmp / "huey.db"),
        "HUEY_NAME": "bench",
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(smtp.port),
        "LOG_LEVEL": "WARNING",
        # The bench schedules BENCH_JOBS jobs from one account in seconds: not what the limits are for.
        "JOB_CREATE_RATE_LIMIT": "1000000 per minute",
        "MAX_PENDING_JOBS_PER_USER": "0",
    }
    env.pop("REDIS_URL", None)
    os.environ.clear()
    os.environ.update(env)
    try:
        baseline = run_variant("plain_eta", 0.0, tmp, smtp, env)
        ours = run_variant("lead", 1.0, tmp, smtp, env)
    finally:
        smtp.stop()
        ferret.stop()
    print(json.dumps({
        "benchmark": "delivery_latency",
        "stack": "embedded: FerretDB (SQLite), Huey on SQLite, 1 consumer x 4 threads, local SMTP",
        "jobs_per_variant": JOBS,
        "baseline_plain_huey_eta": baseline,
        "ours_queued_1s_early": ours,
        "ratio_median_ours_to_baseline": round(ours["median_s"] / baseline["median_s"], 3) if baseline["median_s"] else None,
        "ratio_max_ours_to_baseline": round(ours["max_s"] / baseline["max_s"], 3) if baseline["max_s"] else None,
    }, indent=2))


if __name__ == "__main__":
    main()
