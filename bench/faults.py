"""Fault tolerance in numbers: a consumer killed -9 mid-send, and a burst on many consumers. Prints JSON.

The same scenarios tests/test_faults.py asserts on (tests/support/faults.py),
run here on their own servers: FerretDB (SQLite, this repo's build), a
throwaway Redis, an SMTP server, real `huey_consumer` and `flask sweep`
processes.

- `kill_9`: a consumer with every worker stuck in an SMTP transaction (the
  server stalls before answering RCPT) is killed -9; another one is started.
  Reported: messages per Message-ID, and seconds from the kill until every
  job is delivered and COMPLETED (bounded below by LEASE_SECONDS).
- `burst`: BURST_JOBS jobs due at the same second on 4 consumers x 4 workers,
  with 2 extra `flask sweep --every 1 --grace 2` pollers re-queueing anything
  still due; and once more without the pollers, to show what they cost.

    .venv/bin/python -m bench.faults
"""

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.faults import FaultySmtp  # noqa: E402
from tests.support.faults import Fleet  # noqa: E402
from tests.support.faults import RedisServer  # noqa: E402
from tests.support.faults import burst_scenario  # noqa: E402
from tests.support.faults import kill_scenario  # noqa: E402
from tests.support.ferretdb import FerretDBServer  # noqa: E402

BURST_JOBS = int(os.environ.get("BENCH_BURST_JOBS", "300"))
LEASE_SECONDS = int(os.environ.get("BENCH_LEASE_SECONDS", "3"))


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
        "LOG_LEVEL": "WARNING",
    }
    os.environ.clear()
    os.environ.update(env)
    from webapp import create_app
    from webapp.config import load_config

    create_app(load_config("development"))
    results = {}
    try:
        results["kill_9"] = run("kill", kill_scenario, env, tmp, smtp, jobs=8, workers=4,
                                lease_seconds=LEASE_SECONDS)
        results["burst_with_2_pollers"] = run("burst", burst_scenario, env, tmp, smtp, jobs=BURST_JOBS, pollers=2)
        results["burst_without_pollers"] = run("burst-quiet", burst_scenario, env, tmp, smtp, jobs=BURST_JOBS,
                                               pollers=0)
    finally:
        smtp.stop()
        broker.stop()
        ferret.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({
        "benchmark": "faults",
        "stack": "FerretDB v1.24.2 (SQLite, serialized writes), Redis, huey_consumer -k thread -g TERM, local SMTP",
        **results,
    }, indent=2))


if __name__ == "__main__":
    main()
