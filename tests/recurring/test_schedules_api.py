"""Recurring schedules through the API, and the materializer driven with an explicit `now`.

No consumer here: occurrences are made by the services (as the sweep and the maintenance thread
call them) and checked in the job tables; tests/recurring/test_schedule_faults.py sends them for real.
"""

from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
from bson import ObjectId

from webapp.models import Job
from webapp.models import Schedule
from webapp.services.recurring import occurrences
from webapp.services.recurring import schedules
from webapp.services.recurring.inputs import ScheduleInput
from webapp.services.validation import parse

YEAR = datetime.now(UTC).year + 1
SETTINGS = occurrences.MaterializeSettings(sender="scheduler@mailjobs.test", misfire_seconds=60)


def schedule(**fields):
    return {
        "to": "reader@example.com",
        "subject": "Weekly",
        "body": "Body",
        "cron": "0 9 * * 1",
        "timezone": "Europe/Berlin",
        **fields,
    }


def occurrence_jobs(schedule_id):
    return list(Job.objects(schedule_id=ObjectId(schedule_id)).order_by("occurrence_at"))


def utc(*args):
    return datetime(*args, tzinfo=UTC)


class Owner:
    """Enough of an account for the services: an id, a zone, no default windows."""

    def __init__(self, timezone="UTC"):
        self.id = ObjectId()
        self.timezone = timezone
        self.windows = []


def stored_schedule(owner, now, **fields):
    """A schedule created through the services at `now` (the API does the same with the real now)."""
    data = parse(ScheduleInput, schedule(**fields))
    return schedules.create_schedule(owner, data, now=now)


def made_at(schedule_id):
    return [job.occurrence_at.astimezone(UTC) for job in occurrence_jobs(schedule_id)]


# --- the API --------------------------------------------------------------------------------------


def test_a_new_schedule_answers_its_next_runs_and_its_next_occurrence_is_already_a_job(client, api):
    headers = api.user()
    response = client.post("/api/users/schedules", json=schedule(), headers=headers)
    assert response.status_code == 201, response.json
    body = response.json
    assert body["status"] == "active" and body["runs"] == 1 and body["catch_up"] == "latest"
    runs = [datetime.fromisoformat(run) for run in body["next_runs"]]
    assert len(runs) == 5 and all(b - a == timedelta(days=7) for a, b in zip(runs, runs[1:]))
    assert all(
        run.astimezone(schedules.timing.zone("Europe/Berlin")).strftime("%a %H:%M") == "Mon 09:00" for run in runs
    )
    jobs = client.get("/api/users/jobs", headers=headers).json["items"]
    assert len(jobs) == 1
    [job] = jobs
    assert job["schedule_id"] == body["id"] and job["status"] == "PENDING"
    assert job["occurrence_at"] == job["send_at"] == job["effective_send_at"] == body["next_runs"][0]
    assert job["timezone"] == "Europe/Berlin"
    assert client.get(f"/api/users/schedules/{body['id']}", headers=headers).json["next_runs"] == body["next_runs"]
    assert client.get("/api/users/schedules", headers=headers).json["total"] == 1


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"cron": "0 9 * * 1 *"}, "cron"),  # six fields (seconds): refused
        ({"cron": "every monday"}, "cron"),
        ({"cron": "0 25 * * *"}, "cron"),
        ({"cron": "0 0 30 2 *"}, "cron"),  # a date that never comes
        ({"cron": "0 0 L * *"}, "cron"),
        ({"cron": 5}, "cron"),
        ({"timezone": "Europe/Gondor"}, "timezone"),
        ({"windows": [{"days": ["mon"], "start": "9", "end": "17:00"}]}, "windows.0.start"),
        ({"windows": [{"days": ["xyz"], "start": "09:00", "end": "17:00"}]}, "windows.0.days"),
        ({"starts_at": "2001-01-01T00:00:00Z"}, "starts_at"),
        ({"until": "yesterday"}, "until"),
        ({"until": "2001-01-01T00:00:00Z"}, "until"),
        # No 1 January between February and June: no run at all before until.
        ({"cron": "0 0 1 1 *", "starts_at": f"{YEAR}-02-01T00:00:00", "until": f"{YEAR}-06-01T00:00:00"}, "until"),
        ({"max_runs": 0}, "max_runs"),
        ({"catch_up": "some"}, "catch_up"),
        ({"send_at": f"{YEAR}-01-01T00:00:00Z"}, "send_at"),
        ({"to": "nobody"}, "to.0"),
    ],
)
def test_bad_schedules_are_422_naming_the_field_and_nothing_is_stored(client, api, fields, field):
    headers = api.user()
    response = client.post("/api/users/schedules", json=schedule(**fields), headers=headers)
    assert response.status_code == 422 and field in response.json["error"]["fields"], response.json
    assert client.get("/api/users/schedules", headers=headers).json["total"] == 0
    assert client.get("/api/users/jobs", headers=headers).json["total"] == 0


def test_pause_cancels_the_pending_occurrence_and_resume_makes_a_new_one(client, api):
    headers = api.user()
    created = client.post("/api/users/schedules", json=schedule(), headers=headers).json
    [first] = occurrence_jobs(created["id"])
    paused = client.patch(f"/api/users/schedules/{created['id']}", json={"status": "paused"}, headers=headers).json
    assert paused["status"] == "paused" and paused["next_runs"] == []
    [cancelled] = occurrence_jobs(created["id"])
    assert cancelled.id == first.id and cancelled.status == "CANCELLED"
    resumed = client.patch(f"/api/users/schedules/{created['id']}", json={"status": "active"}, headers=headers).json
    assert resumed["status"] == "active" and resumed["next_runs"] == created["next_runs"]
    statuses = [(job.occurrence_at, job.status) for job in occurrence_jobs(created["id"])]
    # The same occurrence again, as a new job (a new version of the schedule, a new _id).
    assert sorted(status for _, status in statuses) == ["CANCELLED", "PENDING"]
    assert len({occurrence for occurrence, _ in statuses}) == 1


def test_changing_a_schedule_replaces_its_pending_occurrence(client, api):
    headers = api.user()
    created = client.post("/api/users/schedules", json=schedule(), headers=headers).json
    changed = client.patch(
        f"/api/users/schedules/{created['id']}",
        headers=headers,
        json={"cron": "30 7 * * *", "timezone": "America/New_York", "subject": "Daily"},
    )
    assert changed.status_code == 200, changed.json
    assert changed.json["cron"] == "30 7 * * *" and changed.json["timezone"] == "America/New_York"
    jobs = occurrence_jobs(created["id"])
    assert [job.status for job in jobs if job.status == "CANCELLED"] == ["CANCELLED"]
    [pending] = [job for job in jobs if job.status == "PENDING"]
    assert pending.subject == "Daily"
    assert pending.occurrence_at.astimezone(schedules.timing.zone("America/New_York")).strftime("%H:%M") == "07:30"
    bad = client.patch(f"/api/users/schedules/{created['id']}", json={"cron": "* * *"}, headers=headers)
    assert bad.status_code == 422 and "cron" in bad.json["error"]["fields"]


def test_deleting_a_schedule_cancels_what_has_not_run_and_others_cannot_see_it(client, api):
    headers, stranger = api.user(), api.user()
    created = client.post("/api/users/schedules", json=schedule(), headers=headers).json
    assert client.get(f"/api/users/schedules/{created['id']}", headers=stranger).status_code == 404
    assert client.delete(f"/api/users/schedules/{created['id']}", headers=stranger).status_code == 404
    deleted = client.delete(f"/api/users/schedules/{created['id']}", headers=headers)
    assert deleted.status_code == 200 and deleted.json["cancelled_jobs"] == 1
    assert client.get(f"/api/users/schedules/{created['id']}", headers=headers).status_code == 404
    assert [job.status for job in occurrence_jobs(created["id"])] == ["CANCELLED"]


def test_admins_see_every_schedule_and_can_pause_any(client, api):
    owner = api.user()
    created = client.post("/api/users/schedules", json=schedule(), headers=owner).json
    assert client.get("/api/admin/schedules", headers=owner).status_code == 403
    assert client.post(f"/api/admin/schedules/{created['id']}/pause", headers=owner).status_code == 403
    admin = api.admin()
    listed = client.get("/api/admin/schedules", headers=admin).json
    assert [item["id"] for item in listed["items"]] == [created["id"]]
    paused = client.post(f"/api/admin/schedules/{created['id']}/pause", headers=admin)
    assert paused.status_code == 200 and paused.json["status"] == "paused"
    assert client.get(f"/api/users/schedules/{created['id']}", headers=owner).json["status"] == "paused"


def test_a_schedule_in_the_skipped_hour_runs_at_the_moved_time(client, api):
    headers = api.user()
    spring = max(day for day in range(25, 32) if datetime(YEAR, 3, day).weekday() == 6)
    created = client.post(
        "/api/users/schedules",
        headers=headers,
        json=schedule(cron="30 2 * * *", starts_at=f"{YEAR}-03-{spring - 1}T00:00:00"),
    ).json
    assert created["next_runs"][:3] == [
        f"{YEAR}-03-{spring - 1}T01:30:00.000Z",  # 02:30 CET
        f"{YEAR}-03-{spring}T01:30:00.000Z",  # 02:30 skipped: 03:30 CEST
        f"{YEAR}-03-{spring + 1}T00:30:00.000Z",
    ]  # 02:30 CEST


# --- the materializer with an explicit now --------------------------------------------------------


def test_each_pass_makes_the_next_occurrence_and_max_runs_finishes_the_schedule(app):
    owner, t0 = Owner(), utc(YEAR, 5, 4, 8, 0, 30)
    created = stored_schedule(owner, t0, cron="* * * * *", timezone="UTC", max_runs=3)
    assert [made for made, _ in occurrences.materialize_schedule(created.id, t0, SETTINGS)]
    assert made_at(created.id) == [utc(YEAR, 5, 4, 8, 1)]
    # Not due again until that occurrence's time: a pass before it makes nothing.
    assert occurrences.materialize_due(t0 + timedelta(seconds=20), SETTINGS) == []
    occurrences.materialize_due(utc(YEAR, 5, 4, 8, 1, 1), SETTINGS)
    occurrences.materialize_due(utc(YEAR, 5, 4, 8, 2, 1), SETTINGS)
    assert made_at(created.id) == [utc(YEAR, 5, 4, 8, minute) for minute in (1, 2, 3)]
    created.reload()
    assert created.status == "finished" and created.runs == 3 and created.due_at is None
    assert occurrences.materialize_due(utc(YEAR, 5, 4, 9), SETTINGS) == []
    assert len(occurrence_jobs(created.id)) == 3


def test_until_bounds_the_occurrences(app):
    owner, t0 = Owner(), utc(YEAR, 5, 4, 8, 0, 30)
    created = stored_schedule(owner, t0, cron="* * * * *", timezone="UTC", until=f"{YEAR}-05-04T08:02:00Z")
    for minute in range(0, 5):
        occurrences.materialize_due(utc(YEAR, 5, 4, 8, minute, 31), SETTINGS)
    assert made_at(created.id) == [utc(YEAR, 5, 4, 8, 1), utc(YEAR, 5, 4, 8, 2)]
    created.reload()
    assert created.status == "finished"


@pytest.mark.parametrize("catch_up, made", [("none", [2, 12]), ("latest", [2, 10, 12]), ("all", [2, 4, 6, 8, 10, 12])])
def test_catch_up_decides_which_missed_occurrences_are_made(app, catch_up, made):
    """Every 2 minutes; made at 08:00:30 (the 08:02 occurrence), then nothing ran until 08:11:30:
    08:04 .. 08:10 were missed (more than the 60 s grace late), 08:12 is ahead."""
    owner, t0 = Owner(), utc(YEAR, 5, 4, 8, 0, 30)
    created = stored_schedule(owner, t0, cron="*/2 * * * *", timezone="UTC", catch_up=catch_up)
    occurrences.materialize_schedule(created.id, t0, SETTINGS)
    occurrences.materialize_due(utc(YEAR, 5, 4, 8, 11, 30), SETTINGS)
    assert made_at(created.id) == [utc(YEAR, 5, 4, 8, minute) for minute in made]
    expiry = {job.occurrence_at.astimezone(UTC).minute: job.expires_at for job in occurrence_jobs(created.id)}[2]
    # The 08:02 job made before the downtime follows the rule too, through its expiry:
    # none: its own time plus the grace; latest: the next occurrence's plus the grace; all: never.
    assert expiry == {"none": utc(YEAR, 5, 4, 8, 3), "latest": utc(YEAR, 5, 4, 8, 5), "all": None}[catch_up]


def test_an_occurrence_less_late_than_the_grace_is_no_miss(app):
    owner, t0 = Owner(), utc(YEAR, 5, 4, 8, 0, 30)
    created = stored_schedule(owner, t0, cron="* * * * *", timezone="UTC", catch_up="none")
    occurrences.materialize_schedule(created.id, t0, SETTINGS)
    occurrences.materialize_due(utc(YEAR, 5, 4, 8, 6, 40), SETTINGS)  # 08:06 is 40 s late: made
    assert made_at(created.id) == [utc(YEAR, 5, 4, 8, minute) for minute in (1, 6, 7)]


def test_latest_makes_the_most_recent_missed_one_when_nothing_newer_is_made(app):
    owner, t0 = Owner(), utc(YEAR, 5, 4, 8, 0, 30)
    created = stored_schedule(owner, t0, cron="*/10 * * * *", timezone="UTC", catch_up="latest")
    occurrences.materialize_schedule(created.id, t0, SETTINGS)  # 08:10
    occurrences.materialize_due(utc(YEAR, 5, 4, 9, 5), SETTINGS)  # 08:20 .. 09:00 were missed
    assert made_at(created.id) == [utc(YEAR, 5, 4, 8, 10), utc(YEAR, 5, 4, 9, 0), utc(YEAR, 5, 4, 9, 10)]


def test_a_long_downtime_is_caught_up_in_batches_with_all(app):
    owner, t0 = Owner(), utc(YEAR, 5, 4, 8, 0, 30)
    created = stored_schedule(owner, t0, cron="* * * * *", timezone="UTC", catch_up="all")
    occurrences.materialize_schedule(created.id, t0, SETTINGS)
    back = utc(YEAR, 5, 4, 12, 0, 30)  # four hours later: 239 missed
    while occurrences.materialize_due(back, SETTINGS):
        pass
    made = made_at(created.id)
    assert len(made) == len(set(made)) == 241  # 08:01 .. 12:00, and 12:01 ahead
    assert made[0] == utc(YEAR, 5, 4, 8, 1) and made[-1] == utc(YEAR, 5, 4, 12, 1)


def test_a_pass_is_never_made_twice_even_when_repeated(app):
    owner, t0 = Owner(), utc(YEAR, 5, 4, 8, 0, 30)
    created = stored_schedule(owner, t0, cron="* * * * *", timezone="UTC", catch_up="all")
    occurrences.materialize_schedule(created.id, t0, SETTINGS)
    back = utc(YEAR, 5, 4, 8, 30, 30)
    doc = Schedule._get_collection().find_one({"_id": created.id})
    first = occurrences.materialize(doc, back, SETTINGS)  # plans and makes
    # A second process that read the schedule before the first one's plan: it loses the plan.
    assert occurrences.materialize(doc, back, SETTINGS) == []
    # A process that finds the plan stored but (to its knowledge) not carried out makes it again: duplicates refused.
    stored = Schedule._get_collection().find_one({"_id": created.id})
    replay = {**stored, "planned": [job.occurrence_at for job in occurrence_jobs(created.id)][1:]}
    assert occurrences.materialize(replay, back, SETTINGS) == []
    assert len(first) == 30 and len(made_at(created.id)) == len(set(made_at(created.id))) == 31


def test_the_occurrence_id_is_derived_from_the_schedule_its_version_and_the_time():
    schedule_id, moment = ObjectId(), utc(YEAR, 5, 4, 8, 1)
    job_id = occurrences.occurrence_job_id(schedule_id, 0, moment)
    assert job_id == occurrences.occurrence_job_id(schedule_id, 0, moment)
    assert job_id.generation_time == moment
    assert job_id != occurrences.occurrence_job_id(schedule_id, 1, moment)
    assert job_id != occurrences.occurrence_job_id(ObjectId(), 0, moment)
    assert job_id != occurrences.occurrence_job_id(schedule_id, 0, moment + timedelta(minutes=1))


def test_lowering_max_runs_below_the_runs_made_finishes_the_schedule(client, api):
    headers = api.user()
    created = client.post("/api/users/schedules", json=schedule(cron="0 9 * * *", max_runs=3), headers=headers).json
    Schedule.objects(id=created["id"]).update_one(set__runs=3)  # as if three had been made already
    changed = client.patch(f"/api/users/schedules/{created['id']}", json={"max_runs": 2}, headers=headers).json
    assert changed["status"] == "finished" and changed["next_runs"] == []
    assert [job.status for job in occurrence_jobs(created["id"])] == ["CANCELLED"]


def test_latest_never_makes_an_occurrence_after_until(app):
    owner, t0 = Owner(), utc(YEAR, 5, 4, 8, 0, 30)
    created = stored_schedule(
        owner, t0, cron="*/10 * * * *", timezone="UTC", catch_up="latest", until=f"{YEAR}-05-04T08:35:00Z"
    )
    occurrences.materialize_schedule(created.id, t0, SETTINGS)  # 08:10
    occurrences.materialize_due(utc(YEAR, 5, 4, 9, 5), SETTINGS)  # 08:20 and 08:30 missed, 08:40+ past until
    assert made_at(created.id) == [utc(YEAR, 5, 4, 8, 10), utc(YEAR, 5, 4, 8, 30)]
    created.reload()
    assert created.status == "finished"


def test_a_disabled_owners_occurrences_are_held_until_the_account_is_enabled(client, api):
    from webapp.services.accounts import disabling
    from webapp.services.accounts import users

    headers = api.user("held@example.com")
    created = client.post("/api/users/schedules", json=schedule(cron="* * * * *", timezone="UTC"), headers=headers).json
    owner = users.find_user_by_email("held@example.com")
    disabling.disable_account(owner.id)
    [first] = occurrence_jobs(created["id"])
    assert first.held == "owner_disabled"  # held by the disable, like any job of theirs
    later = datetime.fromisoformat(created["next_runs"][0]) + timedelta(seconds=1)
    occurrences.materialize_due(later, SETTINGS)  # the next occurrence, made while disabled: held too
    assert [job.held for job in occurrence_jobs(created["id"])] == ["owner_disabled", "owner_disabled"]
    disabling.enable_account(owner.id)
    assert [job.held for job in occurrence_jobs(created["id"])] == [None, None]
