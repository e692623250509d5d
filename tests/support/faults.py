"""Fault injection with real processes: consumers to kill, pollers, a Redis to stop, a slow SMTP.

Shared by tests/test_faults.py (which asserts) and bench/faults.py (which
prints the numbers). The process running these must already have the app's
environment and a connected app (the jobs are created through the services).
"""

import asyncio
import collections
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import requests

from tests.support.consumer import HueyConsumer
from tests.support.ferretdb import free_port
from tests.support.redis_server import RedisServer  # noqa: F401 - tests and bench/ import it from here
from tests.support.smtp import SmtpTestServer

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class FaultySmtp(SmtpTestServer):
    """The test SMTP server, able to stall before answering RCPT: a worker is then
    blocked mid-transaction with nothing sent yet (unlike `stall_data`, where the
    server has the message and a killed worker leaves the delivery in doubt)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._rcpt_stall = 0.0

    def stall_rcpt(self, seconds):
        """Wait `seconds` before answering every RCPT from now on (0 to stop)."""
        with self._lock:
            self._rcpt_stall = seconds

    def reset_faults(self):
        super().reset_faults()
        self.stall_rcpt(0)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self._lock:
            stall = self._rcpt_stall
        if stall:
            await asyncio.sleep(stall)
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    def duplicates(self):
        """How many accepted messages were extra copies of a Message-ID already accepted."""
        return sum(count - 1 for count in self.count_by_message_id().values())


class Fleet:
    """The consumers and pollers of one scenario, all on one queue; `stop()` ends what is left."""

    def __init__(self, env, log_dir):
        self.env = env
        self.log_dir = Path(log_dir)
        self.consumers = []
        self.pollers = []

    def consumer(self, workers=4, periodic=True, **overrides):
        """Start a `huey_consumer` with this fleet's environment plus `overrides`."""
        env = {**self.env, **{key: str(value) for key, value in overrides.items()}}
        log_path = self.log_dir / f"consumer-{len(self.consumers) + 1}.log"
        consumer = HueyConsumer(env, log_path, workers=workers, periodic=periodic).start()
        self.consumers.append(consumer)
        return consumer

    def poller(self, every, grace):
        """Start `flask sweep --every EVERY --grace GRACE`: one more process running the sweep."""
        with open(self.log_dir / f"poller-{len(self.pollers) + 1}.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", "wsgi", "sweep", "--every", str(every), "--grace", str(grace)],
                cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        self.pollers.append(process)
        return process

    def web(self):
        """Start the web app (`flask run`) with this fleet's environment; its base URL."""
        port = free_port()
        with open(self.log_dir / "web.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", "wsgi", "run", "--host", "127.0.0.1", "--port", str(port)],
                cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        self.pollers.append(process)  # stopped with them
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(f"{url}/api/health"), 20, "the web app to answer")
        return url

    def sweep(self, grace):
        """Run `flask sweep --grace GRACE` once, as an operator would; its output."""
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "sweep", "--grace", str(grace)],
            cwd=PROJECT_ROOT, env=self.env, capture_output=True, text=True, timeout=60, check=True,
        )
        return done.stdout

    def count_in_logs(self, text):
        """How many lines of the consumers' logs contain `text`."""
        return sum(line.count(text) for consumer in self.consumers
                   for line in consumer.log_path.read_text(errors="replace").splitlines())

    def stop(self):
        for process in self.pollers:
            if process.poll() is None:
                process.kill()
                process.wait()
        for consumer in self.consumers:
            if consumer.process and consumer.process.poll() is None:
                consumer.kill()


def _answers(url):
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def wait_until(predicate, timeout, what):
    """Poll `predicate` until it is true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def make_jobs(count, send_at=None, max_attempts=5, queue=True):
    """Create `count` jobs due at `send_at` (now if None) through the services, and queue them
    unless `queue` is false (as when Redis was down: only a sweep will find them)."""
    from bson import ObjectId  # noqa: PLC0415 - the caller sets the environment up first

    from tasks.delivery import schedule_delivery  # noqa: PLC0415
    from webapp.services import jobs  # noqa: PLC0415
    from webapp.services.validation import JobInput  # noqa: PLC0415
    from webapp.services.validation import parse  # noqa: PLC0415

    owner = ObjectId()
    created = []
    for i in range(count):
        data = {"to": f"reader-{i}@example.com", "subject": f"job {i}", "body": "hello"}
        if send_at is not None:
            data["send_at"] = send_at.isoformat()
        job = jobs.create_job(owner, parse(JobInput, data), "scheduler@mailjobs.test", max_attempts)
        created.append(job)
    for job in created if queue else ():
        schedule_delivery(job.id, job.send_at, 1.0)
    return created


def job_docs(jobs):
    from webapp.models import Job  # noqa: PLC0415

    return list(Job._get_collection().find({"_id": {"$in": [job.id for job in jobs]}}))


def statuses(jobs):
    """How many of `jobs` are in each status."""
    return collections.Counter(doc["status"] for doc in job_docs(jobs))


def all_completed(jobs):
    return statuses(jobs) == {"COMPLETED": len(jobs)}


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
    wait_until(lambda: all_completed(created), 60, f"all {jobs} jobs to be COMPLETED after the kill")
    recovered = time.monotonic() - killed_at
    time.sleep(1.0)  # a late second copy would arrive here
    counts = mail.count_by_message_id()
    return {
        "jobs": jobs,
        "held_by_the_killed_consumer": len(held),
        "messages": sum(counts.values()),
        "distinct_message_ids": len(counts),
        "duplicates": mail.duplicates(),
        "lease_seconds": lease_seconds,
        "seconds_from_kill_to_all_delivered": round(recovered, 2),
        "held_job_outcomes": sorted({tuple(a["outcome"] for a in doc["attempts_log"])
                                     for doc in job_docs(created) if doc["_id"] in held}),
        "message_ids_expected": sorted(job.message_id for job in created),
    }


def burst_scenario(fleet, mail, jobs=300, consumers=4, workers=4, pollers=2, poll_every=0.5, poll_grace=0.0,
                   stored_only=None):
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
    call `claim_job` for the same job at once. Exactly one may win: one
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
                deliver_job.schedule(args=(str(job.id),), eta=due - timedelta(seconds=1))
        created += batch
    wait_until(lambda: all_completed(created), 60, f"all {len(created)} jobs to be COMPLETED")
    time.sleep(1.0)  # a late second copy would arrive here
    return {"jobs": len(created), "tasks_per_job": copies, "workers": consumers * workers,
            **_outcome(fleet, mail, created, first_due)}


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
