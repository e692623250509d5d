"""Fault tolerance in numbers: a consumer killed -9 mid-send, and a burst on many consumers. Prints JSON.

The same scenarios tests/delivery/test_faults.py asserts on (tests/support/faults.py),
run here on their own servers: FerretDB (SQLite, this repo's build), a
throwaway Redis, an SMTP server, real `huey_consumer` and `flask sweep`
processes.

- `kill_9` (3 runs): a consumer with every worker stuck in an SMTP
  transaction (the server stalls before answering RCPT) is killed -9;
  another one is started. Reported: messages, duplicates, and seconds from
  the kill until every job is delivered and COMPLETED (bounded below by
  LEASE_SECONDS, BENCH_LEASE_SECONDS=3 here; production's default is 60).
- `burst`: BURST_JOBS jobs due at the same second on 4 consumers x 4 workers,
  half queued at creation and half only stored, with 2 extra
  `flask sweep --every 0.5 --grace 0` pollers racing to queue them; and once
  more without pollers, all queued at creation.

    .venv/bin/python -m bench.faults
"""

import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.fault_scenarios import burst_scenario  # noqa: E402
from tests.support.fault_scenarios import kill_scenario  # noqa: E402
from tests.support.faults import FaultySmtp  # noqa: E402
from tests.support.faults import Fleet  # noqa: E402
from tests.support.faults import RedisServer  # noqa: E402
from tests.support.ferretdb import FerretDBServer  # noqa: E402

BURST_JOBS = int(os.environ.get("BENCH_BURST_JOBS", "300"))
LEASE_SECONDS = int(os.environ.get("BENCH_LEASE_SECONDS", "3"))
KILL_RUNS = 3


def without_id_lists(numbers):
    return {key: value for key, value in numbers.items() if key != "message_ids_expected"}


def run(name, scenario, env, tmp, smtp, **kwargs):
    """One scenario on a queue of its own (this process enqueues there too)."""
    from huey.storage import RedisStorage

    from tasks.queue import huey

    smtp.clear()
    log_dir = tmp / name
    log_dir.mkdir()
    fleet = Fleet({**env, "HUEY_NAME": f"bench-{name}"}, log_dir)
    huey.storage = RedisStorage(f"bench-{name}", url=env["REDIS_URL"])
    try:
        return without_id_lists(scenario(fleet, smtp, **kwargs))
    finally:
        fleet.stop()


def main():
    tmp = Path(tempfile.mkdtemp(prefix="mailjobs-bench-faults-"))
    ferret = FerretDBServer(os.environ.get("FERRETDB_BIN") or str(ROOT / "var/bin/ferretdb"), str(tmp / "db"))
    ferret.start()
    broker = RedisServer(tmp / "redis.log").start()
    smtp = FaultySmtp()
    smtp.start()
    env = {
        **os.environ,
        "APP_ENV": "development",
        "MONGODB_URI": ferret.uri + "mailjobs_bench",
        "REDIS_URL": broker.url,
        "HUEY_NAME": "bench",
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(smtp.port),
        "LOG_LEVEL": "INFO",
    }
    os.environ.clear()
    os.environ.update(env)
    from webapp.app import create_app
    from webapp.config import load_config

    create_app(load_config("development"))
    # The consumers log at INFO (their logs are counted); this process stays quiet.
    logging.getLogger().setLevel(logging.WARNING)
    results = {}
    try:
        kills = [
            run(f"kill-{i}", kill_scenario, env, tmp, smtp, jobs=8, workers=4, lease_seconds=LEASE_SECONDS)
            for i in range(KILL_RUNS)
        ]
        results["kill_9"] = {
            "runs": KILL_RUNS,
            "jobs_per_run": 8,
            "held_by_the_killed_consumer_per_run": [k["held_by_the_killed_consumer"] for k in kills],
            "messages": sum(k["messages"] for k in kills),
            "duplicates": sum(k["duplicates"] for k in kills),
            "lease_seconds": LEASE_SECONDS,
            "seconds_from_kill_to_all_delivered": [k["seconds_from_kill_to_all_delivered"] for k in kills],
            "held_job_outcomes": kills[0]["held_job_outcomes"],
        }
        results["burst_with_2_pollers"] = run("burst", burst_scenario, env, tmp, smtp, jobs=BURST_JOBS, pollers=2)
        results["burst_without_pollers"] = run(
            "burst-quiet", burst_scenario, env, tmp, smtp, jobs=BURST_JOBS, pollers=0, stored_only=0
        )
    finally:
        smtp.stop()
        broker.stop()
        ferret.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    # Ratios against baselines from this same run: recovery against the lease it must wait
    # out, and the burst with racing pollers against the same burst without them.
    kill = results["kill_9"]
    kill["ratio_recovery_to_lease"] = [round(s / LEASE_SECONDS, 2) for s in kill["seconds_from_kill_to_all_delivered"]]
    quiet = results["burst_without_pollers"]["seconds_from_due_to_last_message"]
    if quiet:
        results["ratio_burst_with_pollers_to_without"] = round(
            results["burst_with_2_pollers"]["seconds_from_due_to_last_message"] / quiet, 2
        )
    print(
        json.dumps(
            {
                "benchmark": "faults",
                "stack": "FerretDB v1.24.2 (SQLite, scripts/ferretdb-patches), Redis, huey_consumer -k thread -g TERM, local SMTP",
                **results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
