"""Each consumer process's maintenance thread: heartbeat, delivery figures, pause flag, clean-up.

Huey 3.5.4 calls `on_startup` hooks in every worker thread as it starts
(`Worker.initialize` in huey/consumer.py), again for a worker the consumer
restarts, and `on_shutdown` hooks as each worker exits. The hooks below
count the process's worker threads (so `threads` is the consumer's `-w`
with `-k thread`, 1 per process with `-k process`) and run ONE maintenance
thread per process: started by the first worker, stopped by the last.

Every HEARTBEAT_SECONDS the thread
1. re-reads the pause flag (webapp.services.delivery.pause),
2. writes the figures the process counted since the last beat
   (webapp.services.monitoring.tally → delivery_stats.flush, one bulk write),
3. upserts its WorkerBeat by `_id` (host:pid) with its threads, jobs in
   flight, the pause it saw and its SMTP observations,
4. recovers jobs whose lease ran out (a consumer died holding them: one
   query on the (status, lease_expires_at) index, and a conditional update
   per job found) and queues them at once, so a job held by a killed
   consumer goes out elsewhere within about LEASE_SECONDS plus a beat (a
   job with windows: at the next opening); the consumers take turns (one
   recovery per beat in all, and less often when the query is slow, see
   `Maintenance.recover`), and two at once would be safe: each recovery is
   conditional on the lease token it saw,
5. closes this process's SMTP connections idle for MAIL_IDLE_SECONDS,
6. recounts the jobs per status over all jobs when the kept counts are older
   than JOB_COUNTS_SECONDS (webapp.services.monitoring.job_counts: one read by `_id`, and
   the count when due, so at most one count per JOB_COUNTS_SECONDS per consumer),
7. once an hour, deletes dead workers' records older than a day and old
   figures (safe to race with other consumers),
8. makes the occurrences of recurring schedules that are due (tasks/schedules.py: one
   indexed query, and writes only when a schedule is due; after the rest of the beat, and
   only when it succeeded, so a failing database is not asked twice).
Six to eight database round trips per beat (the recovery's turn, its query
when the turn is ours, the kept counts' read, the count when due, the
schedules' query), none per job, and none that reads more jobs than are
expired, due or counted through an index (docs/queries.md). On a clean stop it
writes the last figures and deletes its record; after a kill -9 the record
stays, is shown dead after three missed beats, and goes a day later.
"""

import logging
import os
import socket
import threading
import time

from pymongo.errors import PyMongoError

from tasks.context import bound_app
from tasks.delivery import requeue_recovered
from tasks.delivery import schedule_delivery
from tasks.queue import huey
from tasks.schedules import materialize_due
from webapp.mail.connections import CONNECTIONS
from webapp.services.delivery import pause
from webapp.services.delivery import recovery
from webapp.services.delivery.rules import DeliverySettings
from webapp.services.jobs import change_marks
from webapp.services.monitoring import delivery_stats
from webapp.services.monitoring import heartbeats
from webapp.services.monitoring import job_counts
from webapp.services.monitoring.tally import TALLY
from webapp.timeutil import utcnow

log = logging.getLogger(__name__)

CLEAN_UP_EVERY_SECONDS = 3600.0
# The lease recovery's share of the time at most (see Maintenance.recover).
RECOVERY_SHARE = 0.1


def process_id():
    """`host:pid`: this consumer process's heartbeat `_id`."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Maintenance:
    """The process's one maintenance thread, started and stopped by the worker threads' hooks."""

    def __init__(self, tally=TALLY):
        self.tally = tally
        self._lock = threading.Lock()
        self._workers = 0
        self._thread = None
        self._stop = threading.Event()
        self._failing = False
        self._cleaned_at = float("-inf")
        self._recovery_seconds = 0.0  # how long the last lease recovery took
        self.paused_at = None
        self.counts_seconds = 0

    @property
    def threads(self):
        return self._workers

    def worker_started(self):
        """A Huey worker thread started: count it, and start the maintenance thread if none runs."""
        with self._lock:
            self._workers += 1
            if self._thread is None:
                self._stop = threading.Event()
                self._thread = threading.Thread(target=self._run, args=(self._stop,), name="maintenance", daemon=True)
                self._thread.start()

    def worker_stopped(self):
        """A Huey worker thread exited: with the last one, stop the thread after a final beat."""
        with self._lock:
            self._workers = max(self._workers - 1, 0)
            if self._workers or self._thread is None:
                return
            thread, self._thread = self._thread, None
            self._stop.set()
        thread.join(timeout=10)

    def _run(self, stop):
        app = bound_app()
        with app.app_context():
            interval = app.config["HEARTBEAT_SECONDS"]
            self.counts_seconds = app.config["JOB_COUNTS_SECONDS"]
            self.settings = DeliverySettings.from_config(app.config)
            self.mail_idle_seconds = app.config["MAIL_IDLE_SECONDS"]
            self.worker_id = process_id()
            self.started_at = utcnow()
            log.info("maintenance thread of %s: a heartbeat every %.1f s", self.worker_id, interval)
            while True:
                self.beat_once(interval)
                if stop.wait(interval):
                    break
            self.say_goodbye()

    def beat_once(self, interval):
        """One heartbeat: pause flag, figures, heartbeat record, lease recovery, idle SMTP connections,
        the kept job counts when due, and the hourly clean-up, then the schedules' due occurrences."""
        try:
            self.paused_at = pause.read_pause()
            self.flush()
            heartbeats.beat(self.worker_id, self._record(interval))
            self.recover(interval)
            CONNECTIONS.close_idle(self.mail_idle_seconds)
            job_counts.recount_if_due(self.counts_seconds)
            if time.monotonic() - self._cleaned_at >= CLEAN_UP_EVERY_SECONDS:
                heartbeats.purge_dead()
                delivery_stats.expire(utcnow())
                self._cleaned_at = time.monotonic()
        except Exception as exc:  # keep beating: a dead thread would show a live consumer as dead
            if not self._failing:  # once per outage, not every beat
                log.warning(
                    "heartbeat of %s failed (%s); trying every beat",
                    self.worker_id,
                    exc,
                    exc_info=not isinstance(exc, PyMongoError),
                )
            self._failing = True
        else:
            if self._failing:
                log.info("heartbeat of %s: database reachable again", self.worker_id)
            self._failing = False
            self.make_occurrences()

    def make_occurrences(self):
        """Recurring schedules: make (and queue) their due occurrences, so each goes out on time."""
        try:
            materialize_due(bound_app())
        except Exception:  # the next beat tries again; the periodic sweep does it too
            log.warning("making schedules' occurrences failed; trying again next beat", exc_info=True)

    def recover(self, interval):
        """Give back the jobs of workers that died holding them (expired leases), and queue them.

        One consumer per beat does it, whichever comes first (a turn in `sweep_turns`, as the
        sweep's), and never for more than RECOVERY_SHARE of the time: on MongoDB its query is one
        index lookup, every beat; on FerretDB without filter pushdown it reads the whole
        collection, so on a large one it runs less often.
        """
        spacing = max(interval * 0.9, self._recovery_seconds / RECOVERY_SHARE)
        if not recovery.take_sweep_turn("lease-recovery", self.worker_id, spacing):
            return
        started = time.monotonic()
        requeue_recovered(recovery.recover_expired_leases(self.settings))
        self._recovery_seconds = time.monotonic() - started

    def flush(self):
        """Write the figures counted since the last beat; on failure keep them for the next one."""
        minutes = self.tally.drain()
        try:
            delivery_stats.flush(minutes)
        except BaseException:
            self.tally.restore(minutes)
            raise

    def _record(self, interval):
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": self.started_at,
            "beat_at": utcnow(),
            "heartbeat_seconds": interval,
            "threads": self._workers,
            "in_flight": self.tally.in_flight_ids(),
            "paused_seen": self.paused_at,
            "smtp": self.tally.smtp_state(),
        }

    def say_goodbye(self):
        """Clean stop: the last figures go out and the record is deleted (stopped, not dead)."""
        try:
            self.flush()
            change_marks.flush_now()
            heartbeats.forget(self.worker_id)
            log.info("maintenance thread of %s stopped", self.worker_id)
        except PyMongoError as exc:
            log.warning("maintenance thread of %s: could not write its last beat: %s", self.worker_id, exc)


MAINTENANCE = Maintenance()


@huey.on_startup()
def start_maintenance():
    """Huey runs this in each worker thread as it starts; only the first starts the thread."""
    MAINTENANCE.worker_started()


@huey.on_shutdown()
def stop_maintenance():
    """Huey runs this in each worker thread as it exits: its SMTP connection closes; the last one
    stops the thread."""
    CONNECTIONS.close_mine()
    MAINTENANCE.worker_stopped()


def queue_due_now():
    """Queue every due PENDING job at once (after a resume); how many were queued.

    A job already queued gets a second task, which finds it taken: the claim is atomic.
    Beyond the first 10,000, the periodic sweep queues the rest within a minute.
    """
    due = recovery.due_unqueued_jobs(grace_seconds=0)
    for job_id, due_at in due:
        schedule_delivery(job_id, due_at, 0, check_first=True)
    return len(due)
