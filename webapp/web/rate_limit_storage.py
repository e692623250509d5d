"""A `limits` storage on the app's own MongoDB connection, for the stack without Redis.

flask-limiter counts in `RATELIMIT_STORAGE_URI`: Redis when `REDIS_URL` is set, else
`mongoengine://`, this storage, so every web process and host that shares the database
shares the counters, and they survive a restart. (`memory://` would count per process:
the configured limit times the number of gunicorn workers, reset by every restart.)

Why not `limits`' own `mongodb://` storage: against FerretDB v1 (the embedded database)
its fixed window fails (`findAndModify` with a projection and an aggregation-pipeline
update are not implemented), so do its sliding window (pipeline updates) and the read
side of its moving window (`$filter`), and its TTL index is refused
(`expireAfterSeconds`). This one uses only plain operators on `_id`: `$inc`, `$set` and
an insert, each one atomic on its own document.

Fixed windows only (flask-limiter's default strategy, set in webapp/config.py). A window
starts at its first hit and lasts the limit's period, like the Redis storage's: the
window is anchored per key because `limits` asks `get()` and `get_expiry()` for a key
without its period, so a window number could not be worked out there. An expired
counter reads as zero and is reset in place by the next hit; the sweep deletes old ones
(`purge_expired`). Times are the web hosts' clocks (keep them in NTP sync).
"""

import time
from datetime import timedelta

from limits.storage import Storage
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError
from pymongo.errors import PyMongoError

from webapp.models import RateCounter
from webapp.timeutil import utcnow

# A hit meets a concurrent first hit of the same window at most once; then it counts there.
_MAX_TRIES = 4


def _counters():
    return RateCounter._get_collection()


class MongoCounterStorage(Storage):
    """`limits` storage for `mongoengine://`: counters in the `rate_limits` collection of the app's database."""

    STORAGE_SCHEME = ["mongoengine"]

    @property
    def base_exceptions(self):
        # What flask-limiter treats as "storage down" (it then counts in memory meanwhile).
        return PyMongoError

    def incr(self, key, expiry, amount=1):
        """Add `amount` to the key's current window (starting one of `expiry` seconds if none) and return it.

        The common case is one round trip: `$inc` on an unexpired counter. Otherwise the
        expired counter is reset in place, or a new one inserted; two processes starting
        the same window at once collide on `_id`, and the loser counts in the winner's.
        """
        for _ in range(_MAX_TRIES):
            now = utcnow()
            counter = _counters().find_one_and_update(
                {"_id": key, "expire_at": {"$gt": now}},
                {"$inc": {"count": amount}},
                return_document=ReturnDocument.AFTER,
            )
            if counter is not None:
                return counter["count"]
            window = {"count": amount, "expire_at": now + timedelta(seconds=expiry)}
            if _counters().update_one({"_id": key, "expire_at": {"$lte": now}}, {"$set": window}).matched_count:
                return amount
            try:
                _counters().insert_one({"_id": key, **window})
                return amount
            except DuplicateKeyError:
                continue
        raise RuntimeError(f"rate limit counter {key!r}: could not count a hit in {_MAX_TRIES} tries")

    def get(self, key):
        """The hits counted in the key's current window (0 when there is none)."""
        counter = _counters().find_one({"_id": key, "expire_at": {"$gt": utcnow()}})
        return counter["count"] if counter else 0

    def get_expiry(self, key):
        """When the key's current window ends, as a Unix timestamp (now when there is none)."""
        counter = _counters().find_one({"_id": key, "expire_at": {"$gt": utcnow()}})
        return counter["expire_at"].timestamp() if counter else time.time()

    def check(self):
        """True when the database answers (flask-limiter asks before leaving its in-memory fallback)."""
        try:
            _counters().database.command("ping")
        except PyMongoError:
            return False
        return True

    def reset(self):
        """Forget every counter; returns how many there were."""
        return _counters().delete_many({}).deleted_count

    def clear(self, key):
        """Forget one key's counter."""
        _counters().delete_one({"_id": key})


def purge_expired(now=None):
    """Delete counters whose window ended (the sweep calls this); returns how many."""
    return _counters().delete_many({"expire_at": {"$lt": now or utcnow()}}).deleted_count
