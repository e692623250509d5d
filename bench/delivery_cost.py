"""Cost per job, counted: database round trips and Redis commands from POST /api/users/jobs to COMPLETED.

Runs tests/support/delivery_cost.py (the same counting tests/delivery/test_delivery_cost.py
asserts on) in a process of its own: a real API call, a real Huey consumer on
Redis, FerretDB, an SMTP server, every MongoDB command seen by a pymongo
CommandListener, Redis INFO commandstats read before and after each job.

Baseline in the same run (BENCH_BASELINE_REF, default 35d55bb, the revision
before this design): the same counting on that revision's code (the harness
is copied into its tree; it uses only what both have).

    .venv/bin/python -m bench.delivery_cost
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.measure import checkout  # noqa: E402
from bench.measure import stop_cleanly_on_sigterm  # noqa: E402

HARNESS = Path("tests/support/delivery_cost.py")


def count(tree, jobs, settle=0.0, settings=()):
    """Run the harness in `tree` (a checkout of the project); its JSON as a dict."""
    command = [sys.executable, "-m", "tests.support.delivery_cost", "--jobs", str(jobs), "--settle", str(settle)]
    for setting in settings:
        command += ["--set", setting]
    done = subprocess.run(command, cwd=tree, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"the cost harness failed in {tree}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def summary(cost):
    return {
        "database_round_trips_per_job": round(statistics.mean(cost["database_round_trips_per_job"]), 1),
        "database_round_trips_each_job": cost["database_round_trips_per_job"],
        "api_commands": cost["api_commands_per_job"][-1],
        "worker_commands": cost["worker_commands_per_job"][-1],
        "redis_commands_per_job": cost["redis_commands_per_job"],
        "redis_commands_per_job_total": cost["redis_commands_per_job_total"],
        "per_consumer_process_commands_per_second": cost["per_time_commands_per_second"],
        "per_time_commands_seen": cost["per_time_commands_seen"],
    }


def run(jobs=5, baseline_ref="35d55bb"):
    """Ours, and the baseline revision's, counted the same way; a dict."""
    ours = count(ROOT, jobs)
    # The pending quota (MAX_PENDING_JOBS_PER_USER, on by default) counts the owner's PENDING jobs
    # at every create: counted here with it, and without it (as the baseline revision had none).
    ours_without_quota = count(ROOT, jobs, settings=["MAX_PENDING_JOBS_PER_USER=0"])
    result = {
        "benchmark": "delivery_cost",
        "jobs_counted": jobs,
        "ours": summary(ours),
        "ours_without_the_pending_quota": summary(ours_without_quota),
    }
    if baseline_ref:
        tmp = Path(tempfile.mkdtemp(prefix="mailjobs-bench-cost-"))
        try:
            tree = checkout(baseline_ref, tmp)
            shutil.copy(ROOT / HARNESS, tree / HARNESS)
            # That design's lease check runs at the lease's expiry: a 2 s lease and 3 s of settling
            # let each job's window see it (with its 60 s default it comes a minute later, same cost).
            before = count(tree, jobs, settle=3.0, settings=["LEASE_SECONDS=2"])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        result[f"baseline_at_{baseline_ref}"] = summary(before)
        base = result[f"baseline_at_{baseline_ref}"]
        for name in ("ours", "ours_without_the_pending_quota"):
            result[f"ratio_round_trips_{name}_to_baseline"] = round(
                result[name]["database_round_trips_per_job"] / base["database_round_trips_per_job"], 2
            )
            if base["redis_commands_per_job_total"]:
                result[f"ratio_redis_commands_{name}_to_baseline"] = round(
                    result[name]["redis_commands_per_job_total"] / base["redis_commands_per_job_total"], 2
                )
    return result


def main():
    stop_cleanly_on_sigterm()
    print(
        json.dumps(
            run(int(os.environ.get("BENCH_COST_JOBS", "5")), os.environ.get("BENCH_BASELINE_REF", "35d55bb") or None),
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
