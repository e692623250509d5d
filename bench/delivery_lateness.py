"""Lateness: `send_at` to arrival at the SMTP server, for a steady stream and a burst. Prints JSON.

On `make run`'s stack (bench/stack.py), 1 consumer x 4 threads, each design
measured in the same run:

- `ours`: the API's way, a task per job queued SCHEDULE_LEAD_SECONDS (1 s)
  early for its send time, the worker waiting out the rest, then one claim;
- `plain_huey_eta` (baseline): the task queued for exactly `send_at`, as plain
  Huey scheduling does (it waits for the scheduler's next one-second tick);
- `poll_every_5_s`, `poll_every_60_s` (baselines, the seed's design): no
  task at creation; a poller (`flask sweep --every P --grace 0`) looks for due
  jobs every P seconds and queues them; the consumer runs no periodic sweep.

Steady: RATE jobs a second, evenly spaced, over SECONDS (all stored a few
seconds before the first is due). Burst: BURST jobs due the same second.
Reported per design: p50/p95/p99/max lateness and, for ours, ratios to each
baseline. `stored` finished jobs are inserted first (the database's size is
part of the test: 0 here, 100,000 in the full run).

    .venv/bin/python -m bench.delivery_lateness               # quick: 20 s steady, no 60 s poll
    BENCH_LATENESS_FULL=1 BENCH_STORED_JOBS=100000 .venv/bin/python -m bench.delivery_lateness
"""

import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.measure import due_in  # noqa: E402
from bench.measure import duplicates  # noqa: E402
from bench.measure import percentiles  # noqa: E402
from bench.measure import stop_cleanly_on_sigterm  # noqa: E402
from bench.stack import Stack  # noqa: E402

# name: (lead seconds for the task, or None for no task; poll period or None)
DESIGNS = {
    "ours": (1.0, None),
    "plain_huey_eta": (0.0, None),
    "poll_every_5_s": (None, 5.0),
    "poll_every_60_s": (None, 60.0),
}


def run_design(stack, design, plan):
    """Send the jobs of `plan` [(offset seconds, count)] with `design`; lateness figures."""
    lead, poll = DESIGNS[design]
    stack.consumer(workers=4, periodic=poll is None, SCHEDULE_LEAD_SECONDS=lead if lead is not None else 1.0)
    poller = stack.poller(poll) if poll is not None else None
    total = sum(count for _, count in plan)
    start = due_in(3 + total * 0.004)
    created, due = [], {}
    for offset, count in plan:
        send_at = start + timedelta(seconds=offset)
        batch = stack.insert_jobs(count, send_at)
        if lead is not None:
            stack.queue(batch, send_at, lead)
        created += batch
        due.update({message_id: send_at.timestamp() for _, message_id in batch})
    spare = start.timestamp() - time.time()
    span = max(offset for offset, _ in plan)
    stack.wait_for_arrivals(created, timeout=span + (poll or 0) + 120)
    time.sleep(1.0)  # a late second copy would arrive here
    arrivals = stack.arrivals(set(due))
    first = {}
    for at, message_id, _ in arrivals:
        first[message_id] = min(at, first.get(message_id, at))
    lateness = [first[message_id] - due[message_id] for message_id in due]
    if poller is not None:
        poller.terminate()
        poller.wait()
    stack.stop_consumers()
    stack.delete_jobs(created)
    return {
        **percentiles(lateness),
        "early": sum(1 for late in lateness if late < 0),
        "duplicates": duplicates(arrivals),
        "seconds_to_spare_before_first_due": round(spare, 2),
    }


def ratios(results, design="ours"):
    """Ours against each baseline, per percentile (below 1: ours is less late)."""
    ours = results[design]
    return {
        name: {
            key: round(ours[key] / other[key], 3) if other[key] > 0 else None
            for key in ("p50_s", "p95_s", "p99_s", "max_s")
        }
        for name, other in results.items()
        if name != design
    }


def run(seconds=20.0, rate=5.0, burst=500, designs=("ours", "plain_huey_eta", "poll_every_5_s"), stored=0):
    """Steady stream and burst for each design, on one stack; a dict."""
    steady_plan = [(n / rate, 1) for n in range(int(seconds * rate))]
    burst_plan = [(0.0, burst)]
    with Stack() as stack:
        if stored:
            stack.insert_jobs(stored, due_in(-86400), status="COMPLETED")
        steady = {design: run_design(stack, design, steady_plan) for design in designs}
        bursts = {design: run_design(stack, design, burst_plan) for design in designs}
    return {
        "benchmark": "delivery_lateness",
        "stack": "FerretDB v1.24.2 (SQLite, patched), Huey on SQLite, 1 huey_consumer x 4 threads, "
        "SMTP sink in its own process",
        "jobs_stored_besides": stored,
        "steady": {"seconds": seconds, "jobs_per_second": rate, **steady, "ratio_ours_to": ratios(steady)},
        "burst": {"jobs_due_the_same_second": burst, **bursts, "ratio_ours_to": ratios(bursts)},
    }


def main():
    stop_cleanly_on_sigterm()
    full = os.environ.get("BENCH_LATENESS_FULL") == "1"
    print(
        json.dumps(
            run(
                seconds=float(os.environ.get("BENCH_STEADY_SECONDS", "60" if full else "20")),
                rate=float(os.environ.get("BENCH_STEADY_RATE", "5")),
                burst=int(os.environ.get("BENCH_BURST_JOBS", "500")),
                designs=tuple(DESIGNS) if full else ("ours", "plain_huey_eta", "poll_every_5_s"),
                stored=int(os.environ.get("BENCH_STORED_JOBS", "0")),
            ),
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
