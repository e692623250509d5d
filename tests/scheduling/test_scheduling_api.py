"""The scheduling contract of the API: zones, wall times and DST, windows, expiry, reschedule, account defaults."""

from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import timedelta

import pytest

# Next year: every date below is within send_at's range (at most 10 years ahead), whenever the suite runs.
YEAR = datetime.now(UTC).year + 1


def sunday(year, month, nth):
    """The nth Sunday of a month (nth=-1: the last)."""
    days = [date(year, month, day) for day in range(1, 32) if _exists(year, month, day)]
    sundays = [day for day in days if day.weekday() == 6]
    return sundays[nth if nth < 0 else nth - 1]


def _exists(year, month, day):
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


BERLIN_SPRING = sunday(YEAR, 3, -1)  # 02:00 CET → 03:00 CEST
BERLIN_AUTUMN = sunday(YEAR, 10, -1)  # 03:00 CEST → 02:00 CET
NEW_YORK_SPRING = sunday(YEAR, 3, 2)  # 02:00 EST → 03:00 EDT
NEW_YORK_AUTUMN = sunday(YEAR, 11, 1)  # 02:00 EDT → 01:00 EST


def job(**fields):
    return {"to": "reader@example.com", "subject": "Hello", "body": "Body", **fields}


def create(client, headers, **fields):
    return client.post("/api/users/jobs", json=job(**fields), headers=headers)


@pytest.mark.parametrize(
    "zone, day, wall, expected",
    [
        # Spring forward: the skipped wall time moves forward by the gap (RFC 5545).
        ("Europe/Berlin", BERLIN_SPRING, "02:30", "01:30"),  # 03:30 CEST
        ("America/New_York", NEW_YORK_SPRING, "02:30", "07:30"),  # 03:30 EDT
        # Fall back: the repeated wall time is its first occurrence.
        ("Europe/Berlin", BERLIN_AUTUMN, "02:30", "00:30"),  # 02:30 CEST, not CET
        ("America/New_York", NEW_YORK_AUTUMN, "01:30", "05:30"),  # 01:30 EDT, not EST
    ],
)
def test_a_wall_time_is_read_in_the_jobs_zone_by_one_dst_rule(client, api, zone, day, wall, expected):
    response = create(client, api.user(), send_at=f"{day}T{wall}:00", timezone=zone)
    assert response.status_code == 201, response.json
    assert response.json["send_at"] == f"{day}T{expected}:00.000Z"
    assert response.json["timezone"] == zone
    assert response.json["effective_send_at"] == response.json["send_at"]


def test_an_offset_wins_over_the_zone(client, api):
    response = create(client, api.user(), send_at=f"{YEAR}-07-01T09:00:00+09:00", timezone="America/New_York")
    assert response.json["send_at"] == f"{YEAR}-07-01T00:00:00.000Z"


def test_the_account_zone_is_the_default_and_me_reads_and_sets_it(client, api):
    headers = api.user()
    assert client.get("/api/users/me", headers=headers).json["timezone"] == "UTC"
    me = client.patch("/api/users/me", json={"timezone": "America/New_York"}, headers=headers)
    assert me.status_code == 200 and me.json["timezone"] == "America/New_York" and me.json["windows"] == []
    created = create(client, headers, send_at=f"{YEAR}-07-01T09:00:00").json
    assert created["timezone"] == "America/New_York" and created["send_at"] == f"{YEAR}-07-01T13:00:00.000Z"


@pytest.mark.parametrize(
    "change, field",
    [
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": 5}, "timezone"),
        ({"windows": [{"days": ["someday"], "start": "09:00", "end": "17:00"}]}, "windows.0.days"),
        ({"windows": [{"days": ["mon"], "start": "25:00", "end": "17:00"}]}, "windows.0.start"),
        ({"windows": [{"days": ["mon"], "start": "09:00", "end": "09:00"}]}, "windows.0.end"),
        ({"windows": [{"days": ["mon"], "start": "09:00"}]}, "windows.0.end"),
        ({"windows": "weekdays"}, "windows"),
        ({"role": "admin"}, "role"),
        ({}, "body"),
    ],
)
def test_account_settings_refuse_bad_input_naming_the_field(client, api, change, field):
    headers = api.user()
    response = client.patch("/api/users/me", json=change, headers=headers)
    assert response.status_code == 422 and field in response.json["error"]["fields"], response.json
    me = client.get("/api/users/me", headers=headers).json
    assert me["timezone"] == "UTC" and me["windows"] == [] and me["role"] == "user"


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"timezone": "Europe/Atlantis"}, "timezone"),
        ({"send_at": "next tuesday"}, "send_at"),
        ({"windows": [{"days": [], "start": "09:00", "end": "17:00"}]}, "windows.0.days"),
        ({"windows": [{"days": ["mon"], "start": "9am", "end": "17:00"}]}, "windows.0.start"),
        ({"windows": [{"days": ["mon"], "start": "09:00", "end": "17:00", "tz": "UTC"}]}, "windows.0.tz"),
        ({"windows": [{"days": ["mon"], "start": "09:00", "end": "17:00"}] * 21}, "windows"),
        ({"expires_at": "soon"}, "expires_at"),
        ({"send_at": f"{YEAR}-07-01T09:00:00Z", "expires_at": f"{YEAR}-07-01T08:00:00Z"}, "expires_at"),
        ({"send_at": f"{YEAR}-07-01T09:00:00Z", "expires_at": f"{YEAR}-07-01T09:00:00Z"}, "expires_at"),
        # It would expire before its window opens: refused rather than dropped unsent later.
        (
            {
                "send_at": f"{YEAR}-07-04T09:00:00Z",
                "expires_at": f"{YEAR}-07-04T12:00:00Z",
                "timezone": "UTC",
                "windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}],
            }
            if date(YEAR, 7, 4).weekday() >= 5
            else {
                "send_at": f"{YEAR}-07-01T18:00:00Z",
                "expires_at": f"{YEAR}-07-01T20:00:00Z",
                "timezone": "UTC",
                "windows": [
                    {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "09:00", "end": "17:00"}
                ],
            },
            "expires_at",
        ),
        ({"expires_at": f"{YEAR + 20}-01-01T00:00:00Z"}, "expires_at"),
    ],
)
def test_bad_scheduling_input_is_422_naming_the_field_and_nothing_is_stored(client, api, fields, field):
    headers = api.user()
    response = create(client, headers, **fields)
    assert response.status_code == 422 and field in response.json["error"]["fields"], response.json
    assert client.get("/api/users/jobs", headers=headers).json["total"] == 0


def test_windows_push_the_effective_send_time_to_the_next_opening(client, api):
    headers = api.user()
    monday = date(YEAR, 6, 1) + timedelta(days=(7 - date(YEAR, 6, 1).weekday()) % 7)
    saturday = monday + timedelta(days=5)
    weekdays = [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}]
    created = create(client, headers, send_at=f"{saturday}T10:00:00", timezone="Europe/Berlin", windows=weekdays).json
    # Saturday 10:00 → the following Monday 09:00 CEST (07:00 UTC).
    assert created["send_at"] == f"{saturday}T08:00:00.000Z"
    assert created["effective_send_at"] == f"{monday + timedelta(days=7)}T07:00:00.000Z"
    assert created["windows"] == weekdays


def test_account_windows_apply_when_a_job_has_none_and_an_empty_list_means_any_time(client, api):
    headers = api.user()
    nights = [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "22:00", "end": "06:00"}]
    assert (
        client.patch("/api/users/me", json={"windows": nights, "timezone": "UTC"}, headers=headers).json["windows"]
        == nights
    )
    defaulted = create(client, headers, send_at=f"{YEAR}-07-01T12:00:00").json
    assert defaulted["windows"] == nights and defaulted["effective_send_at"] == f"{YEAR}-07-01T22:00:00.000Z"
    anytime = create(client, headers, send_at=f"{YEAR}-07-01T12:00:00", windows=[]).json
    assert anytime["windows"] == [] and anytime["effective_send_at"] == f"{YEAR}-07-01T12:00:00.000Z"


# --- reschedule -----------------------------------------------------------------------------------


def test_a_pending_job_is_rescheduled_in_one_change(client, api):
    headers = api.user()
    created = create(client, headers, send_at=f"{YEAR}-07-01T09:00:00Z").json
    changed = client.patch(
        f"/api/users/jobs/{created['id']}",
        headers=headers,
        json={
            "send_at": f"{YEAR}-07-02T09:00:00",
            "timezone": "Europe/Berlin",
            "subject": "Moved",
            "to": ["a@example.com", "b@example.com"],
            "expires_at": f"{YEAR}-07-02T12:00:00",
        },
    )
    assert changed.status_code == 200, changed.json
    body = changed.json
    assert body["send_at"] == body["effective_send_at"] == f"{YEAR}-07-02T07:00:00.000Z"
    assert body["expires_at"] == f"{YEAR}-07-02T10:00:00.000Z"
    assert body["subject"] == "Moved" and body["to"] == ["a@example.com", "b@example.com"]
    assert body["body"] == "Body" and body["message_id"] == created["message_id"]
    cleared = client.patch(f"/api/users/jobs/{created['id']}", headers=headers, json={"expires_at": None}).json
    assert cleared["expires_at"] is None and cleared["send_at"] == body["send_at"]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"send_at": "2001-01-01T00:00:00Z"}, "send_at"),
        ({"send_at": None}, "send_at"),
        ({"timezone": "Nowhere/Special"}, "timezone"),
        ({"to": []}, "to"),
        ({"to": None}, "to"),
        ({"subject": "two\nlines"}, "subject"),
        ({"windows": [{"days": ["sun"], "start": "24:00", "end": "01:00"}]}, "windows.0.start"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"status": "COMPLETED"}, "status"),
        ({}, "body"),
    ],
)
def test_reschedule_validates_like_create_and_changes_nothing_on_error(client, api, change, field):
    headers = api.user()
    created = create(client, headers, send_at=f"{YEAR}-07-01T09:00:00Z").json
    response = client.patch(f"/api/users/jobs/{created['id']}", json=change, headers=headers)
    assert response.status_code == 422 and field in response.json["error"]["fields"], response.json
    after = client.get(f"/api/users/jobs/{created['id']}", headers=headers).json
    assert {key: after[key] for key in ("send_at", "to", "subject", "timezone", "expires_at", "updated_at")} == {
        key: created[key] for key in ("send_at", "to", "subject", "timezone", "expires_at", "updated_at")
    }


def test_a_job_no_longer_pending_cannot_be_rescheduled(client, api):
    headers = api.user()
    created = create(client, headers, send_at=f"{YEAR}-07-01T09:00:00Z").json
    client.post(f"/api/users/jobs/{created['id']}/cancel", headers=headers)
    response = client.patch(f"/api/users/jobs/{created['id']}", json={"subject": "late"}, headers=headers)
    assert response.status_code == 409 and "CANCELLED" in response.json["error"]["message"]
    other = client.patch(f"/api/users/jobs/{created['id']}", json={"subject": "x"}, headers=api.user())
    assert other.status_code == 404
