"""Fault injection with real processes: consumers to kill, pollers, a Redis to stop, a slow SMTP.

Shared by tests/delivery/test_faults.py (which asserts) and bench/faults.py (which
prints the numbers); the scenarios they run are in tests/support/fault_scenarios.py. The process running these must already have the app's
environment and a connected app (the jobs are created through the services).
"""

import asyncio
import collections
import subprocess
import sys
from pathlib import Path

import requests

from tests.support.consumer import HueyConsumer
from tests.support.ferretdb import free_port
from tests.support.redis_server import RedisServer  # noqa: F401 - tests and bench/ import it from here
from tests.support.smtp import SmtpTestServer
from tests.support.waiting import wait_until

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class FaultySmtp(SmtpTestServer):
    """The test SMTP server, able to stall before answering RCPT: a worker is then
    blocked mid-transaction with nothing sent yet (unlike `stall_data`, where the
    server has the message and a killed worker leaves the delivery in doubt)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._rcpt_stall = 0.0
        self._rcpt_stalled = 0  # RCPT commands being held right now

    def stall_rcpt(self, seconds):
        """Wait `seconds` before answering every RCPT from now on (0 to stop)."""
        with self._lock:
            self._rcpt_stall = seconds

    def reset_faults(self):
        super().reset_faults()
        self.stall_rcpt(0)

    def rcpt_stalled(self):
        """How many RCPT commands the server is holding right now."""
        with self._lock:
            return self._rcpt_stalled

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self._lock:
            stall = self._rcpt_stall
        if stall:
            with self._lock:
                self._rcpt_stalled += 1
            try:
                await asyncio.sleep(stall)
            finally:
                with self._lock:
                    self._rcpt_stalled -= 1
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
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.pollers.append(process)
        return process

    def web(self):
        """Start the web app (`flask run`) with this fleet's environment; its base URL."""
        port = free_port()
        with open(self.log_dir / "web.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", "wsgi", "run", "--host", "127.0.0.1", "--port", str(port)],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.pollers.append(process)  # stopped with them
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(f"{url}/api/health"), 20, "the web app to answer")
        return url

    def sweep(self, grace):
        """Run `flask sweep --grace GRACE` once, as an operator would; its output."""
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "sweep", "--grace", str(grace)],
            cwd=PROJECT_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    def count_in_logs(self, text):
        """How many lines of the consumers' logs contain `text`."""
        return sum(
            line.count(text)
            for consumer in self.consumers
            for line in consumer.log_path.read_text(errors="replace").splitlines()
        )

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


def make_jobs(count, send_at=None, max_attempts=5, queue=True):
    """Create `count` jobs due at `send_at` (now if None) through the services, and queue them
    unless `queue` is false (as when Redis was down: only a sweep will find them)."""
    from bson import ObjectId  # noqa: PLC0415 - the caller sets the environment up first

    from tasks.delivery import schedule_delivery  # noqa: PLC0415
    from webapp.services.jobs import actions  # noqa: PLC0415
    from webapp.services.validation import JobInput  # noqa: PLC0415
    from webapp.services.validation import parse  # noqa: PLC0415

    owner = ObjectId()
    created = []
    for i in range(count):
        data = {"to": f"reader-{i}@example.com", "subject": f"job {i}", "body": "hello"}
        if send_at is not None:
            data["send_at"] = send_at.isoformat()
        job = actions.create_job(owner, parse(JobInput, data), "scheduler@mailjobs.test", max_attempts)
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
