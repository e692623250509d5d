"""The fault scenarios tests/delivery/test_faults.py asserts on and bench/faults.py measures.

Each runs real consumer processes (a Fleet) against the test SMTP server that
stalls on request (FaultySmtp), and returns its numbers as a dict. The process
running these must already have the app's environment and a connected app.
"""

import collections
import time
from datetime import timedelta

from tests.support.faults import all_completed
from tests.support.faults import job_docs
from tests.support.faults import make_jobs
from tests.support.faults import statuses
from tests.support.waiting import wait_until


def kill_scenario(fleet, mail, jobs=8, workers=4, lease_seconds=3):
    """Kill -9 a consumer while all its workers are stuck mid-SMTP, then start another one.

    Returns the numbers: jobs, messages, duplicates, seconds from the kill until every job was
    delivered and COMPLETED.
    """
    mail.stall_rcpt(300)
    victim = fleet.consumer(workers=workers, LEASE_SECONDS=lease_seconds)
    created = make_jobs(jobs)
    wait_until(lambda: statuses(created)["RUNNING"] == workers, 30, f"{workers} jobs to be RUNNING")
    held = [doc["_id"] for doc in job_docs(created) if doc["status"] == "RUNNING"]
    victim.kill()
    killed_at = time.monotonic()
    mail.stall_rcpt(0)
    fleet.consumer(workers=workers, LEASE_SECONDS=lease_seconds)
    recovered, counts = delivered_after_kill(created, mail, killed_at)
    return {
        "jobs": jobs,
        "held_by_the_killed_consumer": len(held),
        "messages": sum(counts.values()),
        "distinct_message_ids": len(counts),
        "duplicates": mail.duplicates(),
        "lease_seconds": lease_seconds,
        "seconds_from_kill_to_all_delivered": round(recovered, 2),
        "held_job_outcomes": sorted(
            {tuple(a["outcome"] for a in doc["attempts_log"]) for doc in job_docs(created) if doc["_id"] in held}
        ),
        "message_ids_expected": sorted(job.message_id for job in created),
    }


def delivered_after_kill(created, mail, killed_at):
    """Wait until every job is COMPLETED; the seconds since the kill, and the messages per Message-ID.

    Waits a second more first so that a late second copy would be counted.
    """
    wait_until(lambda: all_completed(created), 60, f"all {len(created)} jobs to be COMPLETED after the kill")
    recovered = time.monotonic() - killed_at
    time.sleep(1.0)  # a late second copy would arrive here
    return recovered, mail.count_by_message_id()


def has_beaten(consumer):
    """True once the consumer process's maintenance thread wrote its heartbeat (it is recovering leases)."""
    from webapp.models import WorkerBeat  # noqa: PLC0415

    return WorkerBeat._get_collection().find_one({"pid": consumer.process.pid}) is not None


def takeover_scenario(fleet, mail, jobs=4, workers=4, lease_seconds=""):
    """Kill -9 a consumer whose workers are all mid-SMTP while another consumer runs beside it.

    Nothing queues a check for the killed consumer's jobs: the running consumer's maintenance thread
    finds their leases expired and queues them. `lease_seconds` "" means the default LEASE_SECONDS.
    Returns the numbers: seconds from the kill until every job was delivered and COMPLETED, duplicates.
    """
    mail.stall_rcpt(300)
    victim = fleet.consumer(workers=workers, LEASE_SECONDS=lease_seconds)
    created = make_jobs(jobs)
    wait_until(lambda: mail.rcpt_stalled() == jobs, 30, f"{jobs} sends stuck at RCPT")
    mail.stall_rcpt(0)  # from now on RCPT is answered; the victim's workers stay stuck in theirs
    rescuer = fleet.consumer(workers=workers, LEASE_SECONDS=lease_seconds)
    wait_until(lambda: has_beaten(rescuer), 30, "the second consumer's first heartbeat")
    victim.kill()
    killed_at = time.monotonic()
    recovered, counts = delivered_after_kill(created, mail, killed_at)
    return {
        "jobs": jobs,
        "messages": sum(counts.values()),
        "duplicates": mail.duplicates(),
        "seconds_from_kill_to_all_delivered": round(recovered, 2),
        "job_outcomes": sorted({tuple(a["outcome"] for a in doc["attempts_log"]) for doc in job_docs(created)}),
        "message_ids_expected": sorted(job.message_id for job in created),
    }


def burst_scenario(
    fleet, mail, jobs=300, consumers=4, workers=4, pollers=2, poll_every=0.5, poll_grace=0.0, stored_only=None
):
    """`jobs` jobs due at the same second, `consumers` x `workers` workers, `pollers` extra sweepers.

    Half the jobs (unless `stored_only` says how many) are queued when
    created, as the API does; the others only stored, as when Redis was
    down, so the pollers find them (each pass re-queues every due PENDING
    job: grace 0). The redundant tasks this makes almost all find their job
    already taken in the worker's check before the claim (`redundant_tasks`);
    the claim itself is rarely contested here (`claims_lost`): the claim race
    is staged by `claim_race_scenario`. What this measures is throughput and
    that nothing is lost or sent twice under that load.
    """
    from webapp.timeutil import utcnow  # noqa: PLC0415

    for i in range(consumers):
        # Two consumers schedule the periodic sweep, as two "poller" consumers would be deployed.
        fleet.consumer(workers=workers, periodic=i < 2)
    for _ in range(pollers):
        fleet.poller(every=poll_every, grace=poll_grace)
    started = time.monotonic()
    # Time to create them all first, even on a loaded machine (about 6 ms each when idle, 37 ms
    # seen while other suites ran on the same 2 cores): the figures count from the due time.
    send_at = utcnow() + timedelta(seconds=3 + jobs * 0.05)
    stored_only = jobs // 2 if stored_only is None else stored_only
    created = make_jobs(jobs - stored_only, send_at) + make_jobs(stored_only, send_at, queue=False)
    created_in = time.monotonic() - started
    margin = send_at.timestamp() - time.time()  # below zero, some jobs were late before they were made
    wait_until(lambda: len(mail.count_by_message_id()) >= jobs, 120, f"{jobs} distinct messages")
    wait_until(lambda: all_completed(created), 60, f"all {jobs} jobs to be COMPLETED")
    time.sleep(1.0)  # a late second copy would arrive here
    return {
        "jobs": jobs,
        "consumers": consumers,
        "workers_per_consumer": workers,
        "extra_pollers": pollers,
        "jobs_stored_but_not_queued": stored_only,
        "seconds_to_create_and_queue": round(created_in, 2),
        "seconds_to_spare_before_due": round(margin, 2),
        **_outcome(fleet, mail, created, send_at),
    }


def claim_race_scenario(fleet, mail, waves=3, jobs_per_wave=8, copies=4, consumers=4, workers=8):
    """Every job's claim contested by `copies` workers at the same instant, `waves` times over.

    Each job is queued `copies` times for its due instant (one second early,
    as always). There are as many workers as tasks in a wave, so every copy
    is picked up before the job is due, passes the worker's check (the job is
    still PENDING), and sleeps until the due instant: then `copies` workers
    call `attempts.claim` for the same job at once. Exactly one may win: one
    attempt per job, `claims_lost` = the other copies, no duplicate.
    """
    from tasks.delivery import deliver_job  # noqa: PLC0415
    from webapp.timeutil import utcnow  # noqa: PLC0415

    for _ in range(consumers):
        fleet.consumer(workers=workers, periodic=False)
    first_due = utcnow() + timedelta(seconds=3)
    created = []
    for wave in range(waves):
        due = first_due + timedelta(seconds=1.5 * wave)
        batch = make_jobs(jobs_per_wave, due, queue=False)
        for job in batch:
            for _ in range(copies):
                deliver_job.schedule(args=(str(job.id), due), eta=due - timedelta(seconds=1))
        created += batch
    wait_until(lambda: all_completed(created), 60, f"all {len(created)} jobs to be COMPLETED")
    time.sleep(1.0)  # a late second copy would arrive here
    return {
        "jobs": len(created),
        "tasks_per_job": copies,
        "workers": consumers * workers,
        **_outcome(fleet, mail, created, first_due),
    }


def _outcome(fleet, mail, created, first_due):
    """What the server got and what the job documents say, after a scenario."""
    counts = mail.count_by_message_id()
    arrivals = sorted(m.received_at for m in mail.messages)
    docs = job_docs(created)
    return {
        "messages": sum(counts.values()),
        "distinct_message_ids": len(counts),
        "duplicates": mail.duplicates(),
        "statuses": dict(statuses(created)),
        "attempts_per_job": dict(collections.Counter(doc["attempts"] for doc in docs)),
        "attempt_outcomes": dict(collections.Counter(a["outcome"] for doc in docs for a in doc["attempts_log"])),
        "seconds_from_due_to_last_message": round(arrivals[-1] - first_due.timestamp(), 2),
        "seconds_from_due_to_first_message": round(arrivals[0] - first_due.timestamp(), 2),
        # Tasks for jobs already taken: found so before claiming, or lost the claim itself.
        "redundant_tasks": fleet.count_in_logs(": not pending, nothing to do"),
        "claims_lost": fleet.count_in_logs(": skipped"),
        "message_ids_expected": sorted(job.message_id for job in created),
    }
