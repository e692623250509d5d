"""Input at and past the edges, through the API and the pages: a clear 4xx, never a 500.

Send times out of range, stored dates at the very ends of what a datetime can
hold (shown in zones 14 hours east and 12 hours west of UTC), absurd page
numbers, JSON nested 100,000 deep, control characters in header fields, and
a request that is too big in several ways at once.
"""

import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
from bson import DatetimeMS

from tests.support.pages import PageClient
from tests.support.waiting import iso

HUGE_PAGE = "9223372036854775807"
EAST, WEST = "Pacific/Kiritimati", "Etc/GMT+12"  # UTC+14 and UTC-12
NESTED = "[" * 100_000 + "]" * 100_000


def post_job(client, headers, **fields):
    payload = {"to": "reader@example.com", "subject": "s", "body": "b", **fields}
    return client.post("/api/users/jobs", json=payload, headers=headers)


def form(pages, **fields):
    data = {"to": "reader@example.com", "subject": "s", "body": "b", "send_at": "", "timezone": "UTC", **fields}
    return pages.post("/jobs", data, htmx=True)


def field_error(fragment, name):
    start = fragment.index(f'id="{name}-error">') + len(f'id="{name}-error">')
    return fragment[start : fragment.index("</p>", start)]


def stored_count():
    from webapp.models import Job

    return Job.objects.count()


# --- send_at has a documented range ----------------------------------------------------------


@pytest.mark.parametrize(
    "send_at, message",
    [
        ("0001-01-01T00:00:00+01:00", "is more than a minute in the past"),
        ("0001-01-01T00:00:00Z", "is more than a minute in the past"),
        ("9999-12-31T23:59:59-01:00", "is more than 10 years ahead"),
        ("9999-12-31T23:59:59Z", "is more than 10 years ahead"),
        (iso(datetime.now(UTC) + timedelta(days=3654)), "is more than 10 years ahead"),
    ],
)
def test_send_at_outside_its_range_is_a_422_on_the_api(client, api, send_at, message):
    response = post_job(client, api.user(), send_at=send_at)
    assert response.status_code == 422, response.json
    assert response.json["error"]["fields"] == {"send_at": message}
    assert stored_count() == 0


def test_send_at_up_to_ten_years_ahead_is_accepted(client, api):
    response = post_job(client, api.user(), send_at=iso(datetime.now(UTC) + timedelta(days=3650)))
    assert response.status_code == 201, response.json


@pytest.mark.parametrize(
    "send_at, zone, message",
    [
        ("0001-01-01T00:00", "Asia/Tokyo", "is more than a minute in the past"),
        ("0001-01-01T00:00", "UTC", "is more than a minute in the past"),
        ("9999-12-31T23:59", "America/New_York", "is more than 10 years ahead"),
        ("9999-12-31T23:59", "UTC", "is more than 10 years ahead"),
        ("9999-12-31T23:59", EAST, "is more than 10 years ahead"),
    ],
)
def test_send_at_outside_its_range_is_an_inline_error_on_the_form(pages, send_at, zone, message):
    pages.signup()
    response = form(pages, send_at=send_at, timezone=zone)
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "send_at") == message
    assert stored_count() == 0


# --- stored dates at the ends of the calendar never break a page ---------------------------------


def plant_extreme_jobs(owner_id):
    """Jobs written straight into the database with datetime.max and datetime.min everywhere, and one
    with a raw BSON date far past year 9999 (which Python cannot hold: pymongo clamps it on read)."""
    from webapp.models import Job
    from webapp.services.jobs import actions
    from webapp.services.validation import JobInput
    from webapp.services.validation import parse

    planted = []
    beyond_9999 = DatetimeMS(2**62)
    for extreme, status in ((datetime.max, "PENDING"), (datetime.min, "COMPLETED"), (beyond_9999, "FAILED")):
        data = parse(JobInput, {"to": "r@example.com", "subject": f"extreme {status}", "body": "b"})
        job = actions.create_job(owner_id, data, "scheduler@mailjobs.test", 5)
        attempt = {
            "worker": "w",
            "started_at": extreme,
            "finished_at": extreme,
            "outcome": "retry",
            "error": "451 later",
        }
        Job._get_collection().update_one(
            {"_id": job.id},
            {
                "$set": {
                    "status": status,
                    "send_at": extreme,
                    "next_attempt_at": extreme,
                    "created_at": extreme,
                    # A finished job's last change stays recent: retention (the shared consumer's sweep)
                    # would delete one last changed in year 1 before the pages are read.
                    "updated_at": extreme if status == "PENDING" else datetime.now(UTC),
                    "sent_at": extreme,
                    "attempts": 1,
                    "attempts_log": [attempt],
                }
            },
        )
        planted.append(job.id)
    return planted


@pytest.fixture(scope="module")
def extreme_dates_forgotten(database):
    """After the tests that plant dates at the ends of the calendar: delete those jobs and restart the
    suite's FerretDB.

    The embedded FerretDB's pushdown keeps a census of the kinds of value each field ever held, and
    pushes a sort or range on a date field to SQLite only while every date in it has 13 digits of
    milliseconds (2001 to 2286; scripts/ferretdb-patches/04). One planted datetime.max leaves sorts on
    created_at to FerretDB's handler until it restarts: still correct, but later tests of query plans
    (tests/ferretdb/test_query_plans.py) would see the plans of a polluted collection, not a real one.
    """
    yield
    from webapp.models import Job

    Job._get_collection().delete_many({"subject": {"$regex": "^extreme "}})
    if database is not None:
        database.restart()


@pytest.mark.usefixtures("extreme_dates_forgotten")
@pytest.mark.parametrize("zone", [EAST, WEST, "UTC"])
def test_datetime_max_and_min_in_the_database_show_on_every_page_and_the_api(client, app, api, zone):
    from webapp.services.accounts import users

    owner = PageClient(client)
    email = owner.signup(f"owner-{uuid.uuid4().hex[:8]}@example.com", timezone=zone)
    user = users.find_user_by_email(email)
    planted = plant_extreme_jobs(user.id)
    admin_email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    users.create_or_promote_admin(admin_email, "correct-horse-9")
    admin = PageClient(app.test_client())
    assert admin.login(admin_email, timezone=zone).status_code == 302

    paths = [
        (owner, "/jobs"),
        (owner, "/jobs/rows"),
        (owner, "/jobs?status=PENDING"),
        (admin, "/admin/jobs"),
        (admin, f"/admin/jobs/rows?status=PENDING&owner={email}"),
        (admin, f"/admin/jobs?owner={email}&status=COMPLETED"),
        (admin, f"/admin/jobs/rows?owner={email}"),
    ]
    paths += [(owner, f"/jobs/{job_id}") for job_id in planted] + [
        (admin, f"/admin/jobs/{job_id}") for job_id in planted
    ]
    for who, path in paths:
        response = who.get(path, htmx="/rows" in path)
        assert response.status_code == 200, (zone, path, response.status_code)
        page = response.get_data(as_text=True)
        assert "9999-12-31" in page or "0001-01-01" in page, (zone, path)
    detail = owner.get(f"/jobs/{planted[0]}").get_data(as_text=True)
    if zone == EAST:  # past year 9999 in Kiritimati: shown in UTC, and said so
        assert "9999-12-31 23:59:59 UTC" in detail
    elif zone == "UTC":
        assert "9999-12-31 23:59:59<" in detail

    bearer = api.login(email)
    listed = client.get("/api/users/jobs", headers=bearer)
    assert listed.status_code == 200
    assert {job["send_at"] for job in listed.json["items"]} == {"9999-12-31T23:59:59.999Z", "0001-01-01T00:00:00.000Z"}
    for job_id in planted:
        assert client.get(f"/api/users/jobs/{job_id}", headers=bearer).status_code == 200
    assert client.get("/api/admin/jobs", headers=api.login(admin_email)).status_code == 200


# --- page numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/users/jobs", "/api/admin/jobs", "/api/admin/users"])
def test_an_absurd_page_number_is_a_422_on_every_api_list(client, api, path):
    response = client.get(f"{path}?page={HUGE_PAGE}", headers=api.admin())
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_failed"
    assert response.json["error"]["fields"] == {"page": "must be between 1 and 100000"}
    assert client.get(f"{path}?page=100000", headers=api.admin()).status_code == 200


@pytest.mark.parametrize("path", ["/jobs", "/jobs/rows", "/admin/jobs", "/admin/jobs/rows", "/admin/users"])
def test_an_absurd_page_number_is_a_clear_message_on_every_page(client, path):
    from webapp.services.accounts import users

    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    users.create_or_promote_admin(email, "correct-horse-9")
    admin = PageClient(client)
    admin.login(email)
    response = admin.get(f"{path}?page={HUGE_PAGE}", htmx=path.endswith("rows"))
    assert response.status_code == 422
    assert "page must be between 1 and 100000" in response.get_data(as_text=True)


# --- JSON nested 100,000 deep --------------------------------------------------------------------


def test_json_nested_100000_deep_is_a_400_with_the_json_error_shape(client, api):
    admin = api.admin()
    someone = client.get("/api/users/me", headers=api.user()).json["id"]
    calls = [
        ("post", "/api/auth/register", {}),
        ("post", "/api/auth/login", {}),
        ("post", "/api/users/jobs", admin),
        ("patch", f"/api/admin/users/{someone}/role", admin),
    ]
    for method, path, headers in calls:
        for body in (NESTED, '{"email": ' + NESTED + ', "role": ' + NESTED + "}"):
            response = getattr(client, method)(path, data=body, content_type="application/json", headers=headers)
            assert response.status_code == 400, (path, response.status_code)
            assert response.json == {
                "error": {"code": "malformed_json", "message": "The request body is not valid JSON.", "fields": {}}
            }


# --- one-line fields refuse control characters -----------------------------------------------------


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x0b", "\x0c", "\x1b", "\x1c", "\x7f", "\x85", "\u2028", "\r", "\n"])
def test_a_control_character_in_the_subject_is_refused_naming_the_field(client, api, char):
    response = post_job(client, api.user(), subject=f"Hello{char}World")
    assert response.status_code == 422
    [(field, message)] = response.json["error"]["fields"].items()
    assert field == "subject"
    assert message.startswith("must be a single line without") and f"U+{ord(char):04X}" in message
    assert stored_count() == 0


def test_a_tab_in_the_subject_is_fine(client, api):
    assert post_job(client, api.user(), subject="Name:\tvalue").status_code == 201


@pytest.mark.parametrize("recipient", ["Evil\x0b <x@example.com>", "x@example.com\x00", "Evil\x1c <x@example.com>"])
def test_a_control_character_in_a_recipient_is_refused_naming_it(client, api, recipient):
    response = post_job(client, api.user(), to=["ok@example.com", recipient])
    assert response.status_code == 422
    fields = response.json["error"]["fields"]
    assert list(fields) == ["to.1"] and "without control characters" in fields["to.1"]


def test_the_form_refuses_a_control_character_in_the_subject_inline(pages):
    pages.signup()
    response = form(pages, subject="Hi\x0bthere")
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "subject") == (
        "must be a single line without control characters (found U+000B)"
    )


def test_the_form_keeps_display_names_and_splits_the_rest(pages):
    from webapp.models import Job

    pages.signup()
    response = pages.post(
        "/jobs",
        {
            "to": 'Ada Lovelace <ada@example.com>, "Hopper, Grace" <grace@example.com>;'
            " bob@example.com\ncat@example.com",
            "subject": "s",
            "body": "b",
            "send_at": "",
            "timezone": "UTC",
        },
    )
    assert response.status_code == 302
    [job] = Job.objects
    assert job.to == [
        "Ada Lovelace <ada@example.com>",
        '"Hopper, Grace" <grace@example.com>',
        "bob@example.com",
        "cat@example.com",
    ]


# --- cheap limits first -------------------------------------------------------------------------------


def test_too_many_recipients_and_too_big_a_body_are_refused_before_any_address_is_parsed(client, api):
    """35,000 recipients (none of them valid) and a body over the limit, in one 500 KB request."""
    payload = {"to": [f"b{i}" for i in range(35_000)], "subject": "s", "body": "x" * (100 * 1024 + 1)}
    response = client.post("/api/users/jobs", json=payload, headers=api.user())
    assert response.status_code == 422
    # Not "to.0: not a valid address" and 34,999 more: the count is checked first.
    assert response.json["error"]["fields"] == {"to": "at most 50 recipients", "body": "must be at most 100 KB"}


def test_the_form_counts_recipients_before_parsing_them(pages):
    pages.signup()
    response = form(pages, to=" ".join(f"bad{i}" for i in range(35_000)))
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "to") == "at most 50 recipients"
