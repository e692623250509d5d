"""The leases a process holds while it sends: renewed together, and a local fence before DATA.

A claimed job carries a lease (`lease_expires_at`, LEASE_SECONDS ahead). One
thread per process renews every lease the process holds, every third of
LEASE_SECONDS, with one bulk write (none when it holds nothing), so a send may
take as long as it needs while a worker that died is noticed within
LEASE_SECONDS (webapp.services.delivery.recovery, run by every consumer each heartbeat).

The renewal also tells the sender how long its lease is surely still its own:
the time the claim or the last renewal that reached the database was sent,
plus the lease, by this process's monotonic clock. `HeldLease.fence` lets
the message data go out on that knowledge alone while at least half the
lease is left (FENCE_FRACTION), and asks for a database write
(`attempts.enter_data_stage`) when it is not; the trade-off is in docs/delivery.md.
"""

import logging
import threading
import time

from pymongo.errors import PyMongoError

from webapp.models.job import DeliveryStage
from webapp.services.delivery import attempts

log = logging.getLogger(__name__)

# DATA may begin on the local clock's word only while at least this share of the lease is left.
FENCE_FRACTION = 0.5


class HeldLease:
    """A lease this process holds on one claimed job."""

    def __init__(self, job, lease_seconds, sent_at):
        self.job = job
        self.lease_seconds = lease_seconds
        self.lost = False
        self.stage = DeliveryStage.CLAIMED  # how far the send got; renewals write DATA to the job
        self.confirmed(sent_at)

    def confirmed(self, sent_at):
        """A write that set the lease to LEASE_SECONDS after `sent_at` (monotonic) reached the database."""
        self.expires_by = sent_at + self.lease_seconds
        self.fence_until = sent_at + self.lease_seconds * (1 - FENCE_FRACTION)

    def fence(self):
        """May the message data go out without asking the database? False: ask it (enter_data_stage).

        Raises LeaseLost if a renewal found the job taken back.
        """
        if self.lost:
            raise attempts.LeaseLost(str(self.job["_id"]))
        return time.monotonic() < self.fence_until

    def entering_data(self):
        """The data is about to go out: the next renewals say so in the job document."""
        self.stage = DeliveryStage.DATA


class LeaseRenewer:
    """One thread per process renewing every held lease with one bulk write per round."""

    def __init__(self):
        self._lock = threading.Lock()
        self._held = {}
        self._wake = threading.Event()
        self._thread = None

    def hold(self, job, lease_seconds, sent_at):
        """Start renewing the lease of a job just claimed (the claim was sent at `sent_at`, monotonic)."""
        held = HeldLease(job, lease_seconds, sent_at)
        with self._lock:
            self._held[job["lease_token"]] = held
            if self._thread is None or not self._thread.is_alive():  # none yet, or we are a forked child
                self._thread = threading.Thread(target=self._run, name="lease-renewer", daemon=True)
                self._thread.start()
        self._wake.set()
        return held

    def release(self, held):
        """Stop renewing: the attempt is over (whatever its outcome)."""
        with self._lock:
            self._held.pop(held.job["lease_token"], None)

    def held(self):
        """The leases held now."""
        with self._lock:
            return list(self._held.values())

    def _run(self):
        while True:
            leases = self.held()
            if not leases:
                self._wake.wait()
                self._wake.clear()
                continue
            time.sleep(min(held.lease_seconds for held in leases) / 3)
            try:
                self.renew(self.held())
            except Exception:  # keep renewing: the lease may still be ours when the database is back
                log.warning("could not renew the leases of jobs in flight", exc_info=True)

    def renew(self, leases):
        """Push out every lease in `leases` with one bulk write; mark the ones found taken back as lost."""
        if not leases:
            return
        stages = [held.stage for held in leases]  # the send may move on meanwhile
        sent_at = time.monotonic()
        try:
            matched = attempts.renew_leases(
                [
                    (held.job, held.lease_seconds, stage == DeliveryStage.DATA)
                    for held, stage in zip(leases, stages, strict=True)
                ]
            )
        except PyMongoError as exc:
            log.warning("could not renew %d lease(s): %s", len(leases), exc)
            return
        if matched < len(leases):
            # Some lease is gone (or its attempt just ended): find which, one by one (rare).
            for held in leases:
                if not attempts.still_holds(held.job):
                    held.lost = True
        for held in leases:
            if not held.lost:
                held.confirmed(sent_at)


# The process's renewer.
RENEWER = LeaseRenewer()
