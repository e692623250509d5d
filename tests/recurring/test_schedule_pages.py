"""The scheduling parts of the pages without a browser: the form's zone, windows, expiry and
recurrence, the live preview, the Schedules pages, the tables' new cells, admin bulk actions."""

import re
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from tests.support.pages import PageClient
from webapp.models import Job
from webapp.models import Schedule

YEAR = datetime.now(UTC).year + 1
SPRING = max(day for day in range(25, 32) if datetime(YEAR, 3, day).weekday() == 6)  # Europe's change


def post_form(pages, htmx=True, **fields):
    form = {
        "to": "reader@example.com",
        "subject": "Hello",
        "body": "Body",
        "send_at": "",
        "timezone": "Europe/Paris",
        "zone": "Europe/Paris",
        "windows": "",
        "expires_at": "",
        "cron": "",
        "catch_up": "latest",
        "until": "",
        "max_runs": "",
    }
    form.update(fields)
    return pages.post("/jobs", form, htmx=htmx)


def errors_of(html):
    return dict(re.findall(r'<p class="error" id="([a-z_]+)-error">([^<]*)</p>', html))


def preview(pages, **fields):
    args = {
        "send_at": "",
        "zone": "Europe/Paris",
        "windows": "",
        "expires_at": "",
        "cron": "",
        "until": "",
        "max_runs": "",
        **fields,
    }
    response = pages.get("/jobs/preview", htmx=True, query_string=args)
    assert response.status_code == 200
    return " ".join(response.get_data(as_text=True).split())


# --- the form --------------------------------------------------------------------------------------


def test_the_form_offers_every_zone_with_the_accounts_selected_and_reads_times_in_the_one_picked(pages):
    pages.signup(timezone="Europe/Paris")
    html = pages.get("/jobs").get_data(as_text=True)
    assert '<option value="Europe/Paris" selected>' in html and '<option value="America/New_York">' in html
    assert "data-browser-default" in html  # the page's script moves it to the browser's zone
    assert post_form(pages, send_at=f"{YEAR}-07-01T09:00", zone="America/New_York").status_code == 201
    [job] = Job.objects
    assert job.timezone == "America/New_York"
    assert job.send_at.replace(tzinfo=UTC) == datetime(YEAR, 7, 1, 13, 0, tzinfo=UTC)


def test_windows_and_expiry_from_the_form_and_their_mistakes_inline(pages):
    pages.signup()
    bad = post_form(pages, windows="mon-fri 9-17", expires_at="2001-01-01T00:00")
    assert bad.status_code == 422
    errors = errors_of(bad.get_data(as_text=True))
    assert "is not days and hours" in errors["windows"] and errors["expires_at"] == "is more than a minute in the past"
    worse = post_form(pages, windows="mon 25:00-17:00")
    assert "window 1 start must be a time HH:MM" in errors_of(worse.get_data(as_text=True))["windows"]
    saturday = datetime(YEAR, 7, 1) + timedelta(days=(5 - datetime(YEAR, 7, 1).weekday()) % 7)
    made = post_form(
        pages,
        send_at=f"{saturday:%Y-%m-%d}T10:00",
        windows="mon-fri 09:00-17:00",
        expires_at=f"{saturday + timedelta(days=3):%Y-%m-%d}T12:00",
    )
    assert made.status_code == 201
    assert f"Its windows hold it until {saturday + timedelta(days=2):%Y-%m-%d} 09:00:00" in made.get_data(as_text=True)
    [job] = Job.objects
    assert [window.as_dict() for window in job.windows] == [
        {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}
    ]
    assert job.expires_at is not None
    table = pages.get("/jobs").get_data(as_text=True)
    assert 'class="goes-out">goes out <time' in table


def test_a_recurrence_makes_a_schedule_whose_next_run_is_a_job_in_the_table(pages):
    pages.signup()
    response = post_form(
        pages, subject="Stand-up notes", cron="0 9 * * mon-fri", zone="America/New_York", catch_up="all", max_runs="10"
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    assert "Repeating “Stand-up notes” from" in response.get_data(as_text=True)
    [schedule] = Schedule.objects
    assert (schedule.cron, schedule.timezone, schedule.catch_up, schedule.max_runs) == (
        "0 9 * * mon-fri",
        "America/New_York",
        "all",
        10,
    )
    [job] = Job.objects
    assert job.schedule_id == schedule.id
    table = pages.get("/jobs").get_data(as_text=True)
    assert f'href="/schedules#schedule-{schedule.id}" title="An occurrence of a repeating email">repeats</a>' in table
    mistakes = post_form(pages, cron="0 9 * * mon-fri *", expires_at=f"{YEAR}-01-01T00:00")
    errors = errors_of(mistakes.get_data(as_text=True))
    assert errors["cron"].startswith("must have 5 fields") and "one-off" in errors["expires_at"]
    assert Schedule.objects.count() == 1


# --- the live preview ------------------------------------------------------------------------------


def test_the_preview_shows_the_next_runs_in_the_zone_across_a_dst_change(pages):
    pages.signup()
    text = preview(pages, cron="30 2 * * *", send_at=f"{YEAR}-03-{SPRING - 1}T00:00")
    assert "Next runs, in Europe/Paris:" in text
    assert f"{YEAR}-03-{SPRING - 1} 02:30 CET" in text and f"{YEAR}-03-{SPRING} 03:30 CEST" in text
    assert text.count("<li>") == 5


def test_the_preview_says_when_a_wall_time_is_skipped_and_when_windows_hold_the_email(pages):
    pages.signup()
    text = preview(pages, send_at=f"{YEAR}-03-{SPRING}T02:30")
    assert (
        f"{YEAR}-03-{SPRING} 02:30 does not exist that day (the clocks skip it): it is read as "
        f"Sun {YEAR}-03-{SPRING} 03:30 CEST."
    ) in text
    autumn = max(day for day in range(25, 32) if datetime(YEAR, 10, day).weekday() == 6)
    assert (
        f"{YEAR}-10-{autumn} 02:30 happens twice that day (the clocks go back): the first one is taken, "
        f"Sun {YEAR}-10-{autumn} 02:30 CEST."
    ) in preview(pages, send_at=f"{YEAR}-10-{autumn}T02:30")
    saturday = datetime(YEAR, 7, 1) + timedelta(days=(5 - datetime(YEAR, 7, 1).weekday()) % 7)
    held = preview(pages, send_at=f"{saturday:%Y-%m-%d}T10:00", windows="mon-fri 09:00-17:00")
    assert f"goes out at Mon {saturday + timedelta(days=2):%Y-%m-%d} 09:00 CEST" in held


def test_the_preview_reports_mistakes_instead_of_failing(pages):
    pages.signup()
    assert "cron must have 5 fields" in preview(pages, cron="* * * * * *")
    assert "zone is not a time zone we know" in preview(pages, zone="Mars/Olympus_Mons")
    assert "windows" in preview(pages, windows="whenever")
    assert "expires at comes before it can go out" in preview(
        pages, send_at=f"{YEAR}-07-01T10:00", expires_at=f"{YEAR}-07-01T09:00"
    )


# --- the Schedules pages ---------------------------------------------------------------------------


def test_the_schedules_page_lists_next_runs_and_pauses_resumes_and_deletes(pages):
    pages.signup()
    post_form(pages, subject="Weekly report", cron="0 9 * * mon", zone="Europe/Berlin")
    [schedule] = Schedule.objects
    html = pages.get("/schedules").get_data(as_text=True)
    assert "Weekly report" in html and "<code>0 9 * * mon</code>" in html
    assert html.count("09:00:00</time>") == 5
    row = pages.post(f"/schedules/{schedule.id}/pause", htmx=True)
    assert row.status_code == 200 and "paused" in row.get_data(as_text=True) and "Resume" in row.get_data(as_text=True)
    assert [job.status for job in Job.objects] == ["CANCELLED"]
    pages.post(f"/schedules/{schedule.id}/resume", htmx=True)
    assert sorted(job.status for job in Job.objects) == ["CANCELLED", "PENDING"]
    assert pages.post(f"/schedules/{schedule.id}/delete", token=False).status_code == 400  # no CSRF token
    gone = pages.post(f"/schedules/{schedule.id}/delete")
    assert gone.status_code == 302 and Schedule.objects.count() == 0
    assert sorted(job.status for job in Job.objects) == ["CANCELLED", "CANCELLED"]


def test_someone_elses_schedule_cannot_be_touched_and_admins_see_all(client, pages):
    from webapp.services.accounts import users

    pages.signup()
    post_form(pages, subject="Mine", cron="0 9 * * mon")
    [schedule] = Schedule.objects
    other = PageClient(client.application.test_client())
    other.signup()
    assert other.post(f"/schedules/{schedule.id}/pause").status_code == 404
    assert other.get("/admin/schedules").status_code == 403
    users.create_or_promote_admin("boss@example.com", "correct-horse-9")
    admin = PageClient(client.application.test_client())
    admin.login("boss@example.com")
    html = admin.get("/admin/schedules").get_data(as_text=True)
    assert "Mine" in html and "Pause" in html and "Delete" not in html
    assert admin.post(f"/admin/schedules/{schedule.id}/pause", htmx=True).status_code == 200
    assert Schedule.objects.get().status == "paused"


# --- admin bulk actions ----------------------------------------------------------------------------


def overdue_jobs(count, owner_email="late@example.com"):
    """PENDING jobs whose effective send time passed 10 minutes ago (as after an outage)."""
    from webapp.services.accounts import users
    from webapp.services.jobs import actions
    from webapp.services.validation import JobInput
    from webapp.services.validation import parse
    from webapp.timeutil import utcnow

    owner = users.find_user_by_email(owner_email) or users.register(owner_email, "correct-horse-9")
    made = []
    for number in range(count):
        job = actions.create_job(
            owner.id,
            parse(JobInput, {"to": "r@example.com", "subject": f"late {number}", "body": "b"}),
            "scheduler@mailjobs.test",
            5,
        )
        Job.objects(id=job.id).update_one(
            set__next_attempt_at=utcnow() - timedelta(minutes=10), set__send_at=utcnow() - timedelta(minutes=10)
        )
        made.append(job)
    return made


@pytest.fixture()
def admin_pages(client):
    from webapp.services.accounts import users

    users.create_or_promote_admin("root@example.com", "correct-horse-9")
    pages = PageClient(client)
    pages.login("root@example.com")
    return pages


def test_bulk_send_now_on_ticked_rows_changes_only_those_still_pending(admin_pages):
    late = overdue_jobs(3)
    Job.objects(id=late[2].id).update_one(set__status="COMPLETED")
    html = admin_pages.get("/admin/jobs?overdue=1").get_data(as_text=True)
    assert html.count('name="ids"') == 2  # a tick box on each row still PENDING
    response = admin_pages.post(
        "/admin/jobs/bulk", {"action": "send_now", "scope": "selected", "ids": [str(job.id) for job in late]}, htmx=True
    )
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "refresh"
    assert "2 pending jobs sent now; 1 ticked were no longer pending." in response.get_data(as_text=True)
    moved = {job.id: job.next_attempt_at for job in Job.objects}
    assert all(datetime.now(UTC) - moved[job.id].replace(tzinfo=UTC) < timedelta(seconds=30) for job in late[:2])


def test_bulk_cancel_everything_the_filter_matches(admin_pages):
    late = overdue_jobs(3)
    overdue_jobs(1, owner_email="other@example.com")
    response = admin_pages.post(
        "/admin/jobs/bulk",
        {"action": "cancel", "scope": "all", "overdue": "1", "owner": "late@example.com", "status": ""},
        htmx=True,
    )
    assert "3 pending jobs cancelled." in response.get_data(as_text=True)
    assert sorted(job.status for job in Job.objects(id__in=[job.id for job in late])) == ["CANCELLED"] * 3
    assert Job.objects(status="PENDING").count() == 1  # the other owner's


def test_bulk_reschedule_reads_the_time_in_the_admins_zone_and_refuses_without_one(admin_pages):
    late = overdue_jobs(2)
    missing = admin_pages.post("/admin/jobs/bulk", {"action": "reschedule", "scope": "all", "overdue": "1"}, htmx=True)
    assert missing.status_code == 422 and "send at is required" in missing.get_data(as_text=True)
    none_ticked = admin_pages.post("/admin/jobs/bulk", {"action": "cancel", "scope": "selected"}, htmx=True)
    assert none_ticked.status_code == 422 and "tick some rows" in none_ticked.get_data(as_text=True)
    done = admin_pages.post(
        "/admin/jobs/bulk",
        {"action": "reschedule", "scope": "all", "overdue": "1", "send_at": f"{YEAR}-07-01T09:00"},
        htmx=True,
    )
    assert "2 pending jobs rescheduled" in done.get_data(as_text=True)
    # The admin signed in with no zone: UTC.
    assert {job.next_attempt_at.replace(tzinfo=UTC) for job in Job.objects(id__in=[j.id for j in late])} == {
        datetime(YEAR, 7, 1, 9, 0, tzinfo=UTC)
    }


def test_the_bulk_api_takes_ids_or_a_filter_and_names_bad_fields(client, api):
    late = overdue_jobs(2)
    admin = api.admin()
    assert (
        client.post(
            "/api/admin/bulk/jobs", json={"action": "cancel", "ids": [str(late[0].id)]}, headers=api.user()
        ).status_code
        == 403
    )
    for body, field in (
        ({"action": "explode", "ids": [str(late[0].id)]}, "action"),
        ({"action": "cancel"}, "body"),
        ({"action": "cancel", "ids": ["nope"]}, "ids"),
        ({"action": "cancel", "filter": {"status": "LOST"}}, "status"),
        ({"action": "reschedule", "ids": [str(late[0].id)], "send_at": "2001-01-01T00:00:00Z"}, "send_at"),
    ):
        response = client.post("/api/admin/bulk/jobs", json=body, headers=admin)
        assert response.status_code == 422 and field in response.json["error"]["fields"], response.json
    done = client.post("/api/admin/bulk/jobs", json={"action": "send_now", "filter": {"overdue": True}}, headers=admin)
    assert done.status_code == 200 and done.json == {"action": "send_now", "affected": 2, "queued": 2}
    assert (
        client.post(
            "/api/admin/bulk/jobs", json={"action": "cancel", "filter": {"status": "FAILED"}}, headers=admin
        ).json["affected"]
        == 0
    )
