"""Throughput: N jobs due the same second, sent by 1 consumer x 4 threads and by 2 consumers. Prints JSON.

On `make run`'s stack (bench/stack.py: FerretDB, Huey on SQLite, real
`huey_consumer` processes, the SMTP sink in its own process). The jobs are
stored in bulk as the API stores them and each is queued as the API queues
it (a task for its send time); the consumers run all along, as they would.
Measured: messages per second from the due second to the last arrival at
the sink, beside the raw ceiling measured in the same run (bench/smtp_ceiling.py:
plain smtplib, the same number of threads, each reusing one connection, to
the same sink), as a ratio. Also the connections the consumers used.

Where the time goes, measured on the same stack without SMTP: the database
alone (the claim and the COMPLETED write of each job, by as many threads),
and the SQLite queue alone (a dequeue per task by as many threads).

    .venv/bin/python -m bench.delivery_throughput            # 1,000 jobs
    BENCH_THROUGHPUT_SIZES=1000,10000 .venv/bin/python -m bench.delivery_throughput
    BENCH_BASELINE_REF=35d55bb ...   # also the consumers of that revision, on the first shape and size
"""

import json
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.measure import checkout  # noqa: E402
from bench.measure import due_in  # noqa: E402
from bench.measure import duplicates  # noqa: E402
from bench.measure import stop_cleanly_on_sigterm  # noqa: E402
from bench.stack import Stack  # noqa: E402

SHAPES = {"1_consumer_x_4_threads": (1, 4), "2_consumers_x_4_threads": (2, 4)}


def burst(stack, jobs, consumers, workers, code=None):
    """`jobs` jobs due the same second on `consumers` x `workers`; the figures.

    `code`: run the consumers of an earlier version (bench.stack.checkout) instead, queueing as it did.
    """
    stack.delete_jobs()
    for _ in range(consumers):
        stack.consumer(workers=workers, code=code)
    # Time to store and queue them all before they are due (queueing is one SQLite write each).
    send_at = due_in(5 + jobs * 0.004)
    started = time.monotonic()
    created = stack.insert_jobs(jobs, send_at, legacy=code is not None)
    stack.queue(created, send_at, task_args=(lambda job_id: (str(job_id),)) if code else None)
    spare = send_at.timestamp() - time.time()
    cpu_before = stack.cpu()
    arrivals = stack.wait_for_arrivals(created, timeout=120 + jobs * 0.1)
    cpu_after = stack.cpu()
    times = sorted(a[0] for a in arrivals)
    time.sleep(1.0)  # a late second copy would arrive here
    arrivals = stack.arrivals({message_id for _, message_id in created})
    last = times[-1] - send_at.timestamp()
    result = {
        "jobs": jobs,
        "seconds_to_store_and_queue": round(time.monotonic() - started - max(0.0, last), 2),
        "seconds_to_spare_before_due": round(spare, 2),
        "seconds_from_due_to_first_message": round(times[0] - send_at.timestamp(), 3),
        "seconds_from_due_to_last_message": round(last, 3),
        "messages_per_second": round(jobs / last, 1),
        "duplicates": duplicates(arrivals),
        "statuses": stack.statuses(created),
        "connections_used": len({a[2] for a in arrivals}),
        # CPU milliseconds per job from the due second to the last arrival, by process (2 cores in all).
        "cpu_ms_per_job": {
            name: round((cpu_after[name] - cpu_before[name]) * 1000 / jobs, 2)
            for name in cpu_after
            if cpu_after[name] is not None and cpu_before[name] is not None
        },
    }
    stack.stop_consumers()
    return result


def database_alone(stack, jobs, threads):
    """Claims and COMPLETED writes per second, `threads` threads, no SMTP and no queue: the database's share."""
    from webapp.services.delivery import attempts

    stack.delete_jobs()
    created = stack.insert_jobs(jobs, due_in(-1))
    pending = iter(created)
    lock = threading.Lock()

    def work(n):
        while True:
            with lock:
                item = next(pending, None)
            if item is None:
                return
            job = attempts.claim(item[0], f"bench-{n}", 6)[0]
            attempts.mark_sent(job)

    started = time.perf_counter()
    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    seconds = time.perf_counter() - started
    stack.delete_jobs()
    return {"jobs": jobs, "threads": threads, "jobs_per_second": round(jobs / seconds, 1)}


def queue_alone(stack, tasks, threads):
    """SQLite queue dequeues per second by `threads` threads (the consumer's own loop does one per task)."""
    from huey import SqliteHuey

    if stack.huey_kind != "sqlite":
        return None
    storage = SqliteHuey("bench-queue-alone", filename=os.environ["HUEY_SQLITE_PATH"]).storage
    for n in range(tasks):
        storage.enqueue(b"x" * 300)
    done = []

    def work():
        count = 0
        while storage.dequeue() is not None:
            count += 1
        done.append(count)

    started = time.perf_counter()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    seconds = time.perf_counter() - started
    return {"tasks": sum(done), "threads": threads, "dequeues_per_second": round(sum(done) / seconds, 1)}


def run(sizes=(1000,), huey="sqlite", baseline_ref=None):
    """Every size on every shape, each beside the smtplib ceiling at the same concurrency; a dict.

    `baseline_ref`: also run the first shape and size with the consumers of that git revision.
    """
    results = {}
    with Stack(huey=huey) as stack:
        for name, (consumers, workers) in SHAPES.items():
            threads = consumers * workers
            for size in sizes:
                ours = burst(stack, size, consumers, workers)
                ceiling = stack.smtp_ceiling(threads, min(size, 5000))
                ceiling_cpu = ceiling["client_cpu_ms_per_message"] + ceiling["sink_cpu_ms_per_message"]
                ours_cpu = sum(value for key, value in ours["cpu_ms_per_job"].items() if key != "this_process")
                results[f"{name}_{size}_jobs"] = {
                    **ours,
                    "ceiling_smtplib_messages_per_second": ceiling["per_second"],
                    "ratio_to_ceiling": round(ours["messages_per_second"] / ceiling["per_second"], 2),
                    # CPU is what a busy 2-core machine runs out of: a job's CPU in all processes beside
                    # the ceiling's (client and sink) per message. Less noisy than rates on a shared machine.
                    "ceiling_cpu_ms_per_message": round(ceiling_cpu, 2),
                    "ratio_ceiling_cpu_to_ours": round(ceiling_cpu / ours_cpu, 2) if ours_cpu else None,
                }
        if baseline_ref:
            (name, (consumers, workers)), size = next(iter(SHAPES.items())), sizes[0]
            before = burst(stack, size, consumers, workers, code=checkout(baseline_ref, stack.tmp))
            ours = results[f"{name}_{size}_jobs"]
            results[f"{name}_{size}_jobs_at_{baseline_ref}"] = {
                **before,
                "ratio_ours_to_this": round(ours["messages_per_second"] / before["messages_per_second"], 2),
            }
        where = {
            "database_alone_4_threads": database_alone(stack, min(max(sizes), 2000), 4),
            "database_alone_8_threads": database_alone(stack, min(max(sizes), 2000), 8),
            "sqlite_queue_alone_4_threads": queue_alone(stack, 2000, 4),
            "smtp_ceiling_1_thread": stack.smtp_ceiling(1, 1000)["per_second"],
        }
    return {
        "benchmark": "delivery_throughput",
        "stack": f"FerretDB v1.24.2 (SQLite, patched), Huey on {huey}, huey_consumer -k thread, "
        "SMTP sink in its own process (aiosmtpd)",
        "by_shape_and_size": results,
        "where_the_time_goes": where,
    }


def main():
    stop_cleanly_on_sigterm()
    sizes = [int(size) for size in os.environ.get("BENCH_THROUGHPUT_SIZES", "1000").split(",")]
    huey = os.environ.get("BENCH_HUEY", "sqlite")
    print(json.dumps(run(sizes, huey, os.environ.get("BENCH_BASELINE_REF") or None), indent=2))


if __name__ == "__main__":
    main()
