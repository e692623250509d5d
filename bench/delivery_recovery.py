"""Recovery: a consumer killed -9 mid-send; how long until its jobs are delivered by another. Prints JSON.

On `make run`'s stack (bench/stack.py) with the default settings
(LEASE_SECONDS=6, HEARTBEAT_SECONDS=2): a consumer of 4 threads holds 4 jobs,
each stuck in its SMTP transaction (the server holds its answer to RCPT, so
no message data has gone out); a second consumer runs beside it; the first
is killed -9. Measured per run: seconds from the kill until every job is
delivered and COMPLETED, and duplicates (copies of a Message-ID beyond the
first) at the SMTP server. RUNS runs (10 by default).

Baseline in the same run (with BENCH_BASELINE_REF, e.g. 35d55bb, the
revision before this design): the same scenario run by that revision's
consumers, with its defaults (a 60 s lease and a lease check queued per claim).

    .venv/bin/python -m bench.delivery_recovery
"""

import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.measure import checkout  # noqa: E402
from bench.measure import due_in  # noqa: E402
from bench.measure import stop_cleanly_on_sigterm  # noqa: E402
from bench.stack import Stack  # noqa: E402
from tests.support.faults import FaultySmtp  # noqa: E402

JOBS = 4


def takeover(stack, smtp, code=None):
    """One run: kill -9 the consumer holding JOBS jobs mid-send; the figures."""
    smtp.clear()
    smtp.stall_rcpt(300)
    settings = {"MAIL_PORT": smtp.port, "LEASE_SECONDS": ""}  # "": the default of the code that runs
    victim = stack.consumer(workers=JOBS, code=code, **settings)
    send_at = due_in(0.5)
    created = stack.insert_jobs(JOBS, send_at, legacy=code is not None)
    stack.queue(created, send_at, lead=0, task_args=(lambda job_id: (str(job_id),)) if code else None)
    stack.wait(lambda: smtp.rcpt_stalled() == JOBS, 60, f"{JOBS} sends stuck at RCPT")
    smtp.stall_rcpt(0)  # from now on RCPT is answered; the victim's workers stay stuck in theirs
    stack.consumer(workers=JOBS, code=code, **settings)
    victim.kill()
    killed_at = time.monotonic()
    stack.wait(lambda: stack.statuses(created) == {"COMPLETED": JOBS}, 300, "the jobs to be COMPLETED")
    seconds = time.monotonic() - killed_at
    time.sleep(1.0)  # a late second copy would arrive here
    wanted = {message_id for _, message_id in created}
    counts = {message_id: n for message_id, n in smtp.count_by_message_id().items() if message_id in wanted}
    stack.stop_consumers()
    stack.delete_jobs(created)
    return {
        "seconds_from_kill_to_all_delivered": round(seconds, 2),
        "messages": sum(counts.values()),
        "duplicates": sum(n - 1 for n in counts.values()),
    }


def run(runs=10, baseline_ref=None):
    """`runs` takeovers with this code (and one with `baseline_ref`'s); a dict."""
    smtp = FaultySmtp()
    smtp.start()
    try:
        with Stack() as stack:
            ours = [takeover(stack, smtp) for _ in range(runs)]
            before = takeover(stack, smtp, code=checkout(baseline_ref, stack.tmp)) if baseline_ref else None
    finally:
        smtp.stop()
    seconds = [run["seconds_from_kill_to_all_delivered"] for run in ours]
    result = {
        "benchmark": "delivery_recovery",
        "stack": "FerretDB v1.24.2 (SQLite, patched), Huey on SQLite, 2 huey_consumer x 4 threads, default "
        "LEASE_SECONDS and HEARTBEAT_SECONDS, local SMTP server holding RCPT",
        "runs": runs,
        "jobs_held_by_the_killed_consumer": JOBS,
        "seconds_from_kill_to_all_delivered": seconds,
        "median_s": round(statistics.median(seconds), 2),
        "max_s": max(seconds),
        "messages": sum(run["messages"] for run in ours),
        "duplicates": sum(run["duplicates"] for run in ours),
    }
    if before:
        result[f"baseline_at_{baseline_ref}"] = before
        result["ratio_max_to_baseline"] = round(max(seconds) / before["seconds_from_kill_to_all_delivered"], 3)
    return result


def main():
    stop_cleanly_on_sigterm()
    print(
        json.dumps(
            run(int(os.environ.get("BENCH_RECOVERY_RUNS", "10")), os.environ.get("BENCH_BASELINE_REF") or None),
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
