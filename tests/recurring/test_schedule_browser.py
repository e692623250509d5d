"""Scheduling in a real browser: the zone picker, the live preview, a repeating email, the Schedules
page, and an admin clearing an overdue backlog. Screenshots: schedule-form, schedules, admin-bulk."""

import re
from datetime import UTC
from datetime import datetime
from datetime import timedelta

from playwright.sync_api import expect

from tests.support.browser import ZONE
from tests.support.browser import screenshot
from tests.support.browser import sign_in
from tests.support.browser import sign_up

YEAR = datetime.now(UTC).year + 1
SPRING = max(day for day in range(25, 32) if datetime(YEAR, 3, day).weekday() == 6)


def watch_csp(page):
    """Collect console messages about the Content-Security-Policy (there must be none)."""
    violations = []
    page.on(
        "console",
        lambda message: (
            violations.append(f"{message.text[:60]} @ {message.location}")
            if "Content Security Policy" in message.text or "Refused to" in message.text
            else None
        ),
    )
    return violations


def test_the_form_previews_times_live_and_makes_a_repeating_email_managed_on_the_schedules_page(open_browser):
    page = open_browser()
    violations = watch_csp(page)
    sign_up(page, "rita@example.com")

    # The zone picker starts on the browser's zone.
    expect(page.get_by_label("Time zone")).to_have_value(ZONE)
    preview = page.locator("#timing-preview")

    # A time the clocks skip: the preview says how it is read, before anything is sent.
    page.get_by_label("Send at").fill(f"{YEAR}-03-{SPRING}T02:30:00")
    expect(preview).to_contain_text(f"{YEAR}-03-{SPRING} 02:30 does not exist that day")
    expect(preview).to_contain_text(f"{YEAR}-03-{SPRING} 03:30 CEST")
    page.get_by_label("Send at").fill("")

    # A recurrence: the next five runs appear as it is typed, in the zone picked.
    page.locator("summary", has_text="Repeat").click()
    page.get_by_label("Repeat on (cron)").fill("0 9 * * mon-fri *")
    expect(preview).to_contain_text("cron must have 5 fields")
    page.get_by_label("Repeat on (cron)").fill("0 9 * * mon-fri")
    expect(preview.locator("li")).to_have_count(5)
    expect(preview.locator("li").first).to_contain_text("09:00 CE")
    page.get_by_label("Time zone").select_option("America/New_York")
    expect(preview).to_contain_text("Next runs, in America/New_York")
    expect(preview.locator("li").first).to_contain_text(re.compile(r"09:00 E[SD]T"))
    page.locator("summary", has_text="Hours it may arrive").click()
    page.get_by_label("Only send within").fill("mon-fri 10:00-17:00")
    expect(preview.locator("li").first).to_contain_text("goes out")

    page.get_by_label("Recipients").fill("team@example.com")
    page.get_by_label("Subject").fill("Stand-up notes")
    page.get_by_label("Message").fill("What did you do yesterday?")
    screenshot(page, "schedule-form")
    page.get_by_role("button", name="Schedule").click()
    expect(page.locator("#job-form [role=status]")).to_contain_text("Repeating “Stand-up notes”")
    # Its next run is an ordinary job in the table, marked as coming from a schedule.
    job_row = page.locator("#job-rows tr").filter(has_text="Stand-up notes")
    expect(job_row.get_by_role("link", name="repeats")).to_be_visible()
    expect(job_row.locator(".goes-out")).to_contain_text("goes out")

    page.get_by_role("link", name="Schedules", exact=True).click()
    expect(page.get_by_role("heading", name="Schedules")).to_be_visible()
    schedule_row = page.locator("#schedule-rows tr").filter(has_text="Stand-up notes")
    expect(schedule_row.locator("code")).to_have_text("0 9 * * mon-fri")
    expect(schedule_row.locator(".next-runs li")).to_have_count(5)
    screenshot(page, "schedules")

    schedule_row.get_by_role("button", name=re.compile("^Pause")).click()
    expect(schedule_row.locator(".badge")).to_have_text("paused")
    expect(schedule_row.locator(".next-runs li")).to_have_count(0)
    schedule_row.get_by_role("button", name=re.compile("^Resume")).click()
    expect(schedule_row.locator(".badge")).to_have_text("active")
    expect(schedule_row.locator(".next-runs li")).to_have_count(5)
    schedule_row.get_by_role("button", name=re.compile("^Delete")).click()
    expect(page.locator("#schedule-rows tr").filter(has_text="Stand-up notes")).to_have_count(0)
    assert page.dialogs and page.dialogs[-1][0] == "confirm"
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My jobs").click()
    # The occurrence cancelled by the pause, and the one made again on resume, cancelled by the delete.
    expect(page.locator("#job-rows tr").filter(has_text="Stand-up notes").locator(".badge")).to_have_text(
        ["CANCELLED", "CANCELLED"]
    )
    assert violations == [], violations


def test_an_admin_ticks_overdue_jobs_that_stay_ticked_across_polls_and_sends_them_now(open_browser):
    from webapp.models import Job
    from webapp.services.accounts import users
    from webapp.services.jobs import actions
    from webapp.services.validation import JobInput
    from webapp.services.validation import parse
    from webapp.timeutil import utcnow

    owner = users.register("slow@example.com", "correct-horse-9")
    late = []
    for number in range(3):
        job = actions.create_job(
            owner.id,
            parse(JobInput, {"to": "r@example.com", "subject": f"Backlog {number}", "body": "b"}),
            "scheduler@mailjobs.test",
            5,
        )
        Job.objects(id=job.id).update_one(
            set__next_attempt_at=utcnow() - timedelta(minutes=20), set__send_at=utcnow() - timedelta(minutes=20)
        )
        late.append(job)
    users.create_or_promote_admin("ops@example.com", "correct-horse-9")
    page = open_browser()
    violations = watch_csp(page)
    sign_in(page, "ops@example.com")
    page.goto("/admin/jobs?overdue=1")
    rows = page.locator("#job-rows tr")
    expect(rows).to_have_count(3)
    rows.nth(0).get_by_role("checkbox").check()
    rows.nth(1).get_by_role("checkbox").check()
    # A poll replaces the rows every 2 s: the ticks survive it.
    with page.expect_response(lambda response: "/admin/jobs/rows" in response.url):
        page.evaluate("htmx.trigger(document.body, 'refresh')")
    page.wait_for_timeout(300)
    expect(rows.nth(0).get_by_role("checkbox")).to_be_checked()
    expect(rows.nth(1).get_by_role("checkbox")).to_be_checked()
    expect(rows.nth(2).get_by_role("checkbox")).not_to_be_checked()
    screenshot(page, "admin-bulk")
    page.get_by_role("button", name="Send now").click()
    expect(page.locator("#bulk-status")).to_have_text("2 pending jobs sent now.")
    # They are no longer overdue: the table refreshed itself to the one left.
    expect(rows).to_have_count(1)
    page.get_by_label("every pending job this filter matches").check()
    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(page.locator("#bulk-status")).to_have_text("1 pending job cancelled.")
    assert violations == [], violations
