"""The stack the delivery benchmarks run on: what `make run` runs, started here on free ports.

FerretDB (this repo's build, patched), Huey on SQLite (`make run`'s default;
`huey="redis"` for the production shape's queue, on a redis-server of its
own), real `huey_consumer` processes, and the SMTP sink (bench/sink.py) in a
process of its own. This process creates the jobs through the services (or
inserts them in bulk, as `make run` would have stored them) and queues them
the way the API does (tasks.delivery.schedule_delivery).

    with Stack() as stack:
        consumer = stack.consumer(workers=4)
        created = stack.create_jobs(100, send_at)
        stack.wait_for_arrivals(created, timeout=60)
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.measure import cpu_seconds  # noqa: E402
from bench.sink import ArrivalLog  # noqa: E402
from tests.support.consumer import HueyConsumer  # noqa: E402
from tests.support.ferretdb import FerretDBServer  # noqa: E402
from tests.support.ferretdb import free_port  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402


class Stack:
    """FerretDB, a queue, a sink and consumers; `close()` (or the with block) stops them all."""

    def __init__(self, huey="sqlite", env=None):
        self.tmp = Path(tempfile.mkdtemp(prefix="mailjobs-bench-"))
        self.huey_kind = huey
        self.extra_env = dict(env or {})
        self.consumers = []
        self.processes = []
        self._servers = []

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self):
        ferret = FerretDBServer(os.environ.get("FERRETDB_BIN") or str(ROOT / "var/bin/ferretdb"), str(self.tmp / "db"))
        ferret.start()
        self._servers.append(ferret)
        self.sink_port = free_port()
        self.sink_log = self.tmp / "arrivals.log"
        self.sink_log.touch()
        self.arrival_log = ArrivalLog(self.sink_log)
        sink = subprocess.Popen(
            [sys.executable, "-m", "bench.sink", "--port", str(self.sink_port), "--log", str(self.sink_log)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.processes.append(sink)
        if sink.stdout.readline().strip() != "ready":
            raise RuntimeError("the SMTP sink did not start")
        self.huey_name = f"bench-{uuid.uuid4().hex[:8]}"
        self.env = {
            **os.environ,
            "APP_ENV": "development",
            "MONGODB_URI": ferret.uri + "mailjobs_bench",
            "HUEY_NAME": self.huey_name,
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": str(self.sink_port),
            "LOG_LEVEL": "WARNING",
            **self.extra_env,
        }
        if self.huey_kind == "redis":
            broker = RedisServer(self.tmp / "redis.log").start()
            self._servers.append(broker)
            self.env["REDIS_URL"] = broker.url
        else:
            self.env.pop("REDIS_URL", None)
            self.env["HUEY_SQLITE_PATH"] = str(self.tmp / "huey.db")
        os.environ.clear()
        os.environ.update(self.env)
        from tasks.queue import huey
        from tasks.queue import make_huey
        from webapp.app import create_app
        from webapp.config import load_config

        huey.storage = make_huey().storage  # this process queues where the consumers read
        self.app = create_app(load_config("development"))
        self.context = self.app.app_context()
        self.context.push()

    def close(self):
        for consumer in self.consumers:
            if consumer.process and consumer.process.poll() is None:
                consumer.stop(timeout=20)
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
        for server in reversed(self._servers):
            server.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- processes ---------------------------------------------------------------------------

    def consumer(self, workers=4, periodic=True, code=None, **overrides):
        """Start a `huey_consumer` (as `make run` does: -k thread -s 1 -m 0.25 -g TERM); wait for its heartbeat.

        `code`: a directory holding another version of the project (see `checkout`) to run instead.
        """
        env = {**self.env, **{key: str(value) for key, value in overrides.items()}}
        consumer = HueyConsumer(
            env, self.tmp / f"consumer-{len(self.consumers) + 1}.log", workers=workers, periodic=periodic
        )
        if code is not None:
            consumer.cwd = code  # huey_consumer imports `tasks` from its working directory
        consumer.start()
        self.consumers.append(consumer)
        self.wait(lambda: self.has_beaten(consumer), 60, "a consumer's first heartbeat")
        return consumer

    def cpu(self):
        """CPU seconds used so far by the database, the consumers and the sink."""
        return {
            "ferretdb": cpu_seconds(self._servers[0]._process.pid),
            "consumers": sum(cpu_seconds(c.process.pid) or 0 for c in self.consumers),
            "sink": cpu_seconds(self.processes[0].pid),
            "this_process": time.process_time(),
        }

    def stop_consumers(self):
        for consumer in self.consumers:
            if consumer.process.poll() is None:
                consumer.stop(timeout=20)
        self.consumers = []

    def poller(self, every, grace=0.0):
        """`flask sweep --every EVERY --grace GRACE`: the seed's design, a poll for due jobs."""
        process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "sweep", "--every", str(every), "--grace", str(grace)],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.processes.append(process)
        return process

    def smtp_ceiling(self, threads, messages):
        """The raw smtplib ceiling to this stack's sink (bench/smtp_ceiling.py, a process of its own),
        with the CPU the client and the sink used per message."""
        sink_cpu = cpu_seconds(self.processes[0].pid)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.smtp_ceiling",
                "--port",
                str(self.sink_port),
                "--threads",
                str(threads),
                "--messages",
                str(messages),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        result = json.loads(done.stdout)
        result["sink_cpu_ms_per_message"] = round((cpu_seconds(self.processes[0].pid) - sink_cpu) * 1000 / messages, 3)
        return result

    @staticmethod
    def has_beaten(consumer):
        from webapp.models import WorkerBeat

        return WorkerBeat._get_collection().find_one({"pid": consumer.process.pid}) is not None

    # --- jobs ----------------------------------------------------------------------------------

    def insert_jobs(self, count, send_at, status="PENDING", owner=None, batch=1000, legacy=False):
        """Store `count` jobs as the API would have (same fields), in bulk, without queueing them.

        `legacy`: as versions before `attempts_left` stored them (their model refuses unknown fields).
        Returns [(job id, message id)].
        """
        from bson import ObjectId

        from webapp.models import Job
        from webapp.services.jobs.actions import message_id_for
        from webapp.timeutil import utcnow

        owner = owner or ObjectId()
        now = utcnow()
        send_at = send_at.replace(microsecond=send_at.microsecond // 1000 * 1000)
        created, docs = [], []
        for n in range(count):
            job_id = ObjectId()
            message_id = message_id_for(job_id, "scheduler@localhost")
            doc = {
                "_id": job_id,
                "owner_id": owner,
                "to": [f"reader-{n}@example.com"],
                "subject": f"bench {n}",
                "body": "hello",
                "send_at": send_at,
                "status": status,
                "attempts": 0,
                "max_attempts": 5,
                "attempts_left": 5,
                "next_attempt_at": send_at,
                "message_id": message_id,
                "created_at": now,
                "updated_at": now,
                "attempts_log": [],
            }
            if status == "COMPLETED":
                doc.update(
                    attempts=1,
                    attempts_left=4,
                    sent_at=send_at,
                    attempts_log=[
                        {"worker": "bench", "started_at": send_at, "finished_at": send_at, "outcome": "sent"}
                    ],
                )
            if legacy:
                doc.pop("attempts_left")
            docs.append(doc)
            created.append((job_id, message_id))
            if len(docs) == batch:
                Job._get_collection().insert_many(docs)
                docs = []
        if docs:
            Job._get_collection().insert_many(docs)
        return created

    def queue(self, created, send_at, lead=1.0, task_args=None):
        """Queue a delivery task per job, as the API does when it stores one.

        `task_args(job_id)`: the task's arguments as an earlier version queued them (a baseline).
        """
        from tasks.delivery import deliver_job
        from tasks.delivery import schedule_delivery

        for job_id, _ in created:
            if task_args is None:
                schedule_delivery(job_id, send_at, lead)
            else:
                deliver_job.schedule(args=task_args(job_id), eta=send_at - timedelta(seconds=lead))

    def delete_jobs(self, created=None):
        """Delete the jobs in `created` (every job if None)."""
        from webapp.models import Job

        query = {} if created is None else {"_id": {"$in": [job_id for job_id, _ in created]}}
        Job._get_collection().delete_many(query)

    def statuses(self, created):
        from webapp.models import Job

        ids = {job_id for job_id, _ in created}
        counts = {}
        for doc in Job._get_collection().find({}, {"status": 1}):
            if doc["_id"] in ids:
                counts[doc["status"]] = counts.get(doc["status"], 0) + 1
        return counts

    # --- arrivals ------------------------------------------------------------------------------

    def arrivals(self, message_ids=None):
        """[(time, Message-ID, peer)] the sink logged, only for `message_ids` if given."""
        found = self.arrival_log.read()
        if message_ids is None:
            return found
        wanted = set(message_ids)
        return [arrival for arrival in found if arrival[1] in wanted]

    def wait_for_arrivals(self, created, timeout):
        """Wait until every job in `created` reached the sink; the arrivals (first one per message)."""
        wanted = {message_id for _, message_id in created}
        seen = set()
        position = 0

        def all_arrived():
            nonlocal position
            arrivals = self.arrival_log.read()
            seen.update(arrival[1] for arrival in arrivals[position:] if arrival[1] in wanted)
            position = len(arrivals)
            return len(seen) >= len(wanted)

        self.wait(all_arrived, timeout, f"{len(wanted)} messages at the sink")
        return self.arrivals(wanted)

    @staticmethod
    def wait(predicate, timeout, what, every=0.1):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(every)
