"""The rate-limit storage of the stack without Redis, against the suite's real FerretDB.

Why it exists is a test too: `limits`' own MongoDB storage does not work on FerretDB v1,
so the first test shows what fails there. Then ours, through `limits`' fixed-window
strategy as flask-limiter drives it: exact counts under concurrent hits (including the
race to start a window), windows that end, and the sweep's purge.
"""

import threading
import time
import uuid
from datetime import timedelta

import pytest
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from pymongo.errors import OperationFailure

from webapp.models import RateCounter
from webapp.timeutil import utcnow
from webapp.web import rate_limit_storage


@pytest.fixture()
def limiter(app):
    """`limits`' fixed-window strategy on the `mongoengine://` storage (the app's database)."""
    return FixedWindowRateLimiter(storage_from_string("mongoengine://"))


def key():
    return f"test-{uuid.uuid4().hex}"


def test_limits_own_mongodb_storage_does_not_work_on_ferretdb(database):
    if database is None:
        pytest.skip("TEST_MONGODB_URI: not the suite's FerretDB")
    storage = storage_from_string(database.uri, database_name=f"limits_{uuid.uuid4().hex[:8]}")
    with pytest.raises(OperationFailure, match="expireAfterSeconds"):
        storage.storage  # creating its TTL index
    strategy = FixedWindowRateLimiter(storage)
    with pytest.raises(OperationFailure, match="not implemented"):
        strategy.hit(parse("5 per minute"), key())  # findAndModify with a projection / a pipeline update


def test_the_storage_counts_exactly_under_concurrent_hits(limiter):
    item = parse("50 per hour")
    name = key()
    barrier = threading.Barrier(8)
    granted = []

    def hammer():
        barrier.wait()  # all start the window at once: the insert race
        for _ in range(20):
            granted.append(limiter.hit(item, name))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert granted.count(True) == 50
    assert limiter.get_window_stats(item, name).remaining == 0
    assert RateCounter.objects(key=item.key_for(name)).get().count == 160  # every hit counted, once


def test_a_window_lasts_its_period_from_the_first_hit_then_starts_afresh(limiter):
    item = parse("3 per 2 seconds")
    name = key()
    started = time.time()
    assert [limiter.hit(item, name) for _ in range(4)] == [True, True, True, False]
    reset_at = limiter.get_window_stats(item, name).reset_time
    assert started + 1.5 < reset_at <= time.time() + 2.01  # Retry-After comes from this
    time.sleep(max(0.0, reset_at - time.time()) + 0.1)
    assert limiter.test(item, name)
    assert [limiter.hit(item, name) for _ in range(4)] == [True, True, True, False]
    assert RateCounter.objects(key=item.key_for(name)).count() == 1  # reset in place, not a second document


def test_the_sweep_purges_ended_windows_only(limiter):
    ended, running = parse("1 per second"), parse("1 per hour")
    limiter.hit(ended, "purge-me")
    limiter.hit(running, "keep-me")
    assert rate_limit_storage.purge_expired(now=utcnow() + timedelta(seconds=5)) >= 1
    assert RateCounter.objects(key=ended.key_for("purge-me")).count() == 0
    assert not limiter.test(running, "keep-me")  # still counted: the window has not ended
