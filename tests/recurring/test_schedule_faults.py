"""Recurring schedules with real processes: catch-up after downtime, and racing materializers.

Each test starts its own consumers (and `flask sweep` pollers) on a queue of its own, sending to an
SMTP server of its own. What happened before the downtime is played through the services with an
explicit `now` in the past (cron has minute granularity: the occurrences cannot be waited for);
what happens after it is the real consumers' doing. Run alone with `pytest -m faults`.
"""

import os
import time
import uuid
from datetime import UTC
from datetime import timedelta

import pytest
from bson import ObjectId
from huey.storage import RedisStorage

from tests.support.faults import Fleet
from tests.support.waiting import wait_until
from webapp.models import Job
from webapp.models import Schedule
from webapp.services.delivery import pause
from webapp.services.recurring import occurrences
from webapp.services.recurring import schedules
from webapp.services.recurring.inputs import ScheduleInput
from webapp.services.scheduling import recurrence
from webapp.services.validation import parse
from webapp.timeutil import as_utc
from webapp.timeutil import utcnow

pytestmark = [pytest.mark.faults, pytest.mark.usefixtures("shared_consumer_stopped")]
SETTINGS = occurrences.MaterializeSettings(sender="scheduler@mailjobs.test", misfire_seconds=60)


@pytest.fixture()
def fleet(app, mail, monkeypatch, tmp_path):
    """Consumers and pollers on a queue of this test's own (this process queues there too)."""
    from tasks.queue import huey

    name = f"schedules-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(huey, "storage", RedisStorage(name, url=os.environ["REDIS_URL"]))
    fleet = Fleet({**os.environ, "HUEY_NAME": name, "MAIL_PORT": str(mail.port), "HEARTBEAT_SECONDS": "0.3"}, tmp_path)
    yield fleet
    fleet.stop()
    huey.storage.flush_all()


class Owner:
    def __init__(self):
        self.id, self.timezone, self.windows = ObjectId(), "UTC", []


def schedule_made_at(app, t0, cron, catch_up):
    """A schedule created at `t0` (in the past), whose first occurrence was made and queued then
    (its task waited in the queue, which outlives the consumers)."""
    from tasks.schedules import materialize_schedule

    data = parse(
        ScheduleInput,
        {
            "to": "reader@example.com",
            "subject": f"Every hour ({catch_up})",
            "body": "b",
            "cron": cron,
            "timezone": "UTC",
            "catch_up": catch_up,
        },
    )
    created = schedules.create_schedule(Owner(), data, now=t0)
    assert materialize_schedule(app, created.id, now=t0) == 1
    return created


def stored_occurrences(schedule_id):
    return list(Job._get_collection().find({"schedule_id": schedule_id}).sort("occurrence_at", 1))


@pytest.mark.parametrize("catch_up, sent", [("none", 0), ("latest", 1), ("all", 6)])
def test_after_six_hours_down_catch_up_decides_what_goes_out(app, fleet, mail, catch_up, sent):
    """Hourly, half an hour out of phase with now. The schedule was made 5 h 40 min before the last
    occurrence; its first occurrence (made then) and five more were missed while no consumer ran."""
    now = utcnow()
    minute = (now.minute + 30) % 60
    last = next(
        moment
        for moment in recurrence.occurrences_after(f"{minute} * * * *", UTC, now - timedelta(hours=1, minutes=1))
        if moment <= now and now - moment > timedelta(minutes=20)
    )
    created = schedule_made_at(app, last - timedelta(hours=5, minutes=40), f"{minute} * * * *", catch_up)
    [first] = stored_occurrences(created.id)

    fleet.consumer(workers=4)  # the consumer is back

    ahead = last + timedelta(hours=1)
    wait_until(
        lambda: (
            (doc := Schedule._get_collection().find_one({"_id": created.id}))["planned"] == []
            and as_utc(doc["next_made_at"]) == ahead
        ),
        30,
        "the catch-up pass",
    )
    due = [doc for doc in stored_occurrences(created.id) if as_utc(doc["occurrence_at"]) < now]
    wait_until(
        lambda: all(
            doc["status"] in ("COMPLETED", "FAILED")
            for doc in stored_occurrences(created.id)
            if as_utc(doc["occurrence_at"]) < now
        ),
        30,
        "every missed occurrence settled",
    )
    mail.wait_for(sent, timeout=10)
    time.sleep(1.5)  # a late extra copy would arrive here
    counts = mail.count_by_message_id()
    assert sum(counts.values()) == sent and set(counts.values()) <= {1}
    made = [as_utc(doc["occurrence_at"]) for doc in stored_occurrences(created.id)]
    assert made[-1] == ahead and made.count(ahead) == 1  # the next one is ready, PENDING
    first_now = Job._get_collection().find_one({"_id": first["_id"]})
    if catch_up == "all":
        assert len(due) == 6 and first_now["status"] == "COMPLETED"
    else:  # the occurrence made before the downtime expired rather than go out 6 hours late
        assert first_now["status"] == "FAILED" and first_now["last_error"].startswith("expired")
        assert len(due) == 1 + (catch_up == "latest")
    if catch_up == "latest":
        assert as_utc(due[-1]["occurrence_at"]) == last


def test_two_consumers_and_two_sweeps_racing_never_make_an_occurrence_twice(app, fleet, mail):
    """Six minutely schedules, 150 minutes behind with catch_up=all: 900 occurrences to make, in
    plans of 100, by two consumers' maintenance threads and sweeps and two `flask sweep` pollers at
    once. Delivery is paused, so only the making races."""
    pause.pause("test: racing materializers")
    created = []
    try:
        t0 = utcnow() - timedelta(minutes=150)
        created = [schedule_made_at(app, t0, "* * * * *", "all") for _ in range(6)]
        for _ in range(2):
            fleet.consumer(workers=2)
            fleet.poller(every=0.1, grace=0)
        started = utcnow()

        def caught_up():
            docs = list(Schedule._get_collection().find({"_id": {"$in": [s.id for s in created]}}))
            return all(doc["planned"] == [] and as_utc(doc["next_made_at"]) > started for doc in docs)

        wait_until(caught_up, 180, "every schedule caught up")
        fleet.stop()
        for schedule in created:
            made = [as_utc(doc["occurrence_at"]) for doc in stored_occurrences(schedule.id)]
            doc = Schedule._get_collection().find_one({"_id": schedule.id})
            expected = [
                moment
                for moment in recurrence.next_runs("* * * * *", UTC, t0, 1000)
                if moment <= as_utc(doc["next_made_at"])
            ]
            duplicates = len(made) - len(set(made))
            assert duplicates == 0, f"{duplicates} occurrences made twice"
            assert made == expected and doc["runs"] == len(expected)
    finally:
        Job._get_collection().delete_many({"schedule_id": {"$in": [s.id for s in created]}})
        pause.resume("test: racing materializers")
