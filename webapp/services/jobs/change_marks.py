"""Change marks: counters on the user document that move on whenever a job table may have changed.

A job table's poll (every 2 s per open tab) must answer "nothing changed" with one
database round trip, and that round trip is already made: the session's account is read
on every request, so sign-out and disable take effect at once (webapp/auth/session.py).
So the marks live on the account: `jobs_mark` moves on when one of the account's jobs
changes, `all_jobs_mark` (admins) when any job changes. A poll whose ETag was made from
the same mark is answered 304 from the account alone (webapp/web/polling.py).

Every write that changes what a table shows moves the marks of the job's owner and of
every admin, one bulk write of two `$inc`s:

- `bump(owner_ids)` at once, where a request, the sweep or the maintenance beat changed jobs
  (cancel, requeue, close, reschedule, the admins' bulk send-now, cancel and reschedule,
  the schedule form, expiry in the sweep, a schedule's occurrences made, or cancelled when
  it is paused, changed or deleted, retention);
- `note(owner_id)` later, where a round trip more would cost too much: the delivery path
  (claim, sent, failed or expired after the claim, waiting for the mail server, recovered)
  and `POST /api/users/jobs`, whose budget is four round trips from the call to COMPLETED
  (docs/delivery.md). The process's flusher thread sends one bulk write per FLUSH_DELAY for
  everything noted meanwhile, however many jobs.

What a process noted and had not flushed yet is lost if it is killed (at most FLUSH_DELAY
of notes, or longer while the database is away); a poll also checks the table itself
every REVALIDATE_SECONDS, so a table is never stale for longer than that
(webapp/web/polling.py). Marks only grow; their values mean nothing beyond "changed".
"""

import atexit
import logging
import os
import threading
import time

from mongoengine.connection import ConnectionFailure as NotConnected
from pymongo import UpdateMany
from pymongo.errors import PyMongoError

from webapp.models import Role
from webapp.models import User

log = logging.getLogger(__name__)

# How long the flusher gathers notes before one write: a burst of jobs shares it.
FLUSH_DELAY = 0.25
# After a failed flush (the database is away), try again this often; the notes are kept.
RETRY_SECONDS = 1.0


def _updates(owner_ids):
    updates = []
    owner_ids = sorted({owner for owner in owner_ids if owner is not None})
    if owner_ids:
        updates.append(UpdateMany({"_id": {"$in": owner_ids}}, {"$inc": {"jobs_mark": 1}}))
    updates.append(UpdateMany({"role": Role.ADMIN}, {"$inc": {"all_jobs_mark": 1}}))
    return updates


def bump(owner_ids):
    """Move on the marks of these owners and of every admin now: one round trip."""
    User._get_collection().bulk_write(_updates(owner_ids), ordered=False)


def bump_admins():
    """Move on every admin's all-jobs mark (the counts over all jobs changed)."""
    bump(())


class Flusher:
    """The process's pending notes and the thread that writes them (started at the first note)."""

    def __init__(self, delay=FLUSH_DELAY):
        self.delay = delay
        self._lock = threading.Lock()
        self._owners = set()
        self._wake = threading.Event()
        self._thread = None
        self._pid = None

    def note(self, owner_id):
        """Remember that a job of `owner_id` changed; the flusher writes it within `delay`."""
        with self._lock:
            self._owners.add(owner_id)
            # None yet, or this is a forked child (a gunicorn worker): threads do not survive a fork.
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="change-marks", daemon=True)
                self._thread.start()
        self._wake.set()

    def pending(self):
        with self._lock:
            return set(self._owners)

    def flush(self):
        """Write what was noted (one bulk write); on failure keep it for the next try and raise."""
        with self._lock:
            owners, self._owners = self._owners, set()
        if not owners:
            return 0
        try:
            bump(owners)
        except BaseException:
            with self._lock:
                self._owners |= owners
            raise
        return len(owners)

    def _run(self):
        failing = False
        while True:
            self._wake.wait()
            self._wake.clear()
            time.sleep(self.delay)  # gather the burst
            try:
                self.flush()
            except (PyMongoError, NotConnected) as exc:
                if not failing:
                    log.warning("could not write change marks (%s); retrying every %.0f s", exc, RETRY_SECONDS)
                failing = True
                time.sleep(RETRY_SECONDS)
                self._wake.set()
                continue
            except Exception:  # keep the thread: a dead flusher would leave every table stale
                log.exception("change marks: unexpected error")
                continue
            if failing:
                log.info("change marks written again")
            failing = False


FLUSHER = Flusher()


def note(owner_id):
    """Move the owner's and the admins' marks on soon, without a round trip now (see the module doc)."""
    FLUSHER.note(owner_id)


def flush_now():
    """Write the pending notes now (a clean stop); errors are logged, not raised."""
    try:
        FLUSHER.flush()
    except NotConnected:
        pass  # the process never used the database, or has let go of it: nothing to write to
    except Exception as exc:
        log.warning("change marks not written: %s", exc)


atexit.register(flush_now)
