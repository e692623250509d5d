"""The web UI in a real browser (Chromium via Playwright), against a real server and workers.

Each test is one person's story. Screenshots of the main pages are taken on every
run into test-results/screenshots/ (git-ignored); `make screenshots` writes them to
docs/screenshots/ for the README instead.
"""

import re
from datetime import datetime
from datetime import timedelta
from zoneinfo import ZoneInfo

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from tests.support.browser import PASSWORD
from tests.support.browser import ZONE
from tests.support.browser import screenshot
from tests.support.browser import sign_in
from tests.support.browser import sign_up

XSS = "<script>alert(1)</script>"


def local_input(moment):
    """What a person types into the datetime-local input, in Paris."""
    return moment.astimezone(ZoneInfo(ZONE)).strftime("%Y-%m-%dT%H:%M:%S")


def schedule(page, subject, send_at=None, to="friend@example.com", body="Hello from the browser test."):
    page.get_by_label("Recipients").fill(to)
    page.get_by_label("Subject").fill(subject)
    page.get_by_label("Message").fill(body)
    page.get_by_label("Send at").fill(local_input(send_at) if send_at else "")
    page.get_by_role("button", name="Schedule").click()
    expect(page.locator("#job-form [role=status]")).to_contain_text(f"Scheduled “{subject}”")


def row(page, subject):
    return page.locator("#job-rows tr").filter(has=page.get_by_role("link", name=subject, exact=True))


def test_a_user_schedules_watches_it_go_out_cancels_another_and_signs_out(open_browser, consumer, smtp):
    page = open_browser()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "sign-in")

    sign_up(page, "walter@example.com")
    expect(page.get_by_text(f"Times are shown in {ZONE}")).to_be_visible()  # the browser's zone, kept
    expect(page.get_by_role("link", name="All jobs")).to_have_count(0)  # not an admin
    page.evaluate("window.sameDocument = true")  # gone if the page ever reloads

    polls = []
    page.on(
        "response",
        lambda r: polls.append((r.status, r.headers.get("content-length"))) if "/jobs/rows" in r.url else None,
    )

    # An email three seconds from now: it appears PENDING, then turns COMPLETED on this same page.
    send_at = datetime.now(ZoneInfo(ZONE)).replace(microsecond=0) + timedelta(seconds=3)
    schedule(page, "Lunch on Friday?", send_at)
    soon = row(page, "Lunch on Friday?")
    expect(soon.locator(".badge")).to_have_text("PENDING")
    expect(soon.locator("td[data-label='Send at']")).to_have_text(send_at.strftime("%Y-%m-%d %H:%M:%S"))
    expect(soon.locator(".badge")).to_have_text("COMPLETED", timeout=15_000)
    expect(soon.locator("td[data-label='Attempts']")).to_have_text("1")
    expect(soon.locator("td[data-label='Sent at'] time")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))
    [message] = smtp.wait_for(1)
    assert message.message["Subject"] == "Lunch on Friday?"
    assert page.evaluate("window.sameDocument") is True

    # Nothing changes now: the polls come back 304 with no body and the rows are left alone.
    page.evaluate("document.querySelector('#job-rows tr').dataset.untouched = 'yes'")
    polls.clear()
    page.wait_for_timeout(4_500)
    assert polls and all(status == 304 for status, _ in polls), polls
    assert page.evaluate("document.querySelector('#job-rows tr').dataset.untouched") == "yes"

    # A subject that is HTML stays text.
    schedule(page, XSS, datetime.now(ZoneInfo(ZONE)) + timedelta(days=2))
    expect(row(page, XSS)).to_have_count(1)
    expect(page.locator("#job-rows script")).to_have_count(0)

    # Another one for next week, cancelled from its row.
    schedule(page, "Dentist reminder", datetime.now(ZoneInfo(ZONE)) + timedelta(days=7))
    reminder = row(page, "Dentist reminder")
    expect(reminder.locator(".badge")).to_have_text("PENDING")
    reminder.get_by_role("button", name="Cancel").click()
    expect(reminder.locator(".badge")).to_have_text("CANCELLED")
    expect(reminder.get_by_role("button", name="Cancel")).to_have_count(0)
    assert [kind for kind, _ in page.dialogs] == ["confirm"]  # the cancel confirmation, and no alert(1)
    screenshot(page, "my-jobs")

    # Filter by status without leaving the page.
    statuses = page.get_by_role("navigation", name="Filter by status")
    statuses.get_by_role("link", name="CANCELLED 1").click()
    expect(page).to_have_url(re.compile(r"/jobs\?status=CANCELLED$"))
    expect(page.locator("#job-rows tr")).to_have_count(1)
    expect(row(page, "Dentist reminder")).to_have_count(1)
    assert page.evaluate("window.sameDocument") is True

    # The sent job's detail: its attempt history.
    statuses.get_by_role("link", name="All 3").click()
    expect(page.locator("#job-rows tr")).to_have_count(3)
    row(page, "Lunch on Friday?").get_by_role("link").click()
    expect(page.get_by_role("heading", name="Lunch on Friday?")).to_be_visible()
    history = page.locator("table.attempts tbody tr")
    expect(history).to_have_count(1)
    expect(history.locator("td[data-label='Outcome']")).to_have_text("sent")
    expect(page.get_by_text(f"({ZONE})")).to_be_visible()
    screenshot(page, "job-detail")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.goto("/jobs")
    expect(page).to_have_url(re.compile(r"/login\?next="))


def test_an_admin_sees_everyones_jobs_filters_and_promotes_and_others_get_403(open_browser, api, client):
    from webapp.services.accounts import users

    users.create_or_promote_admin("ada@example.com", PASSWORD)
    far = (datetime.now(ZoneInfo("UTC")) + timedelta(days=3)).isoformat()
    alice, bob = api.user("alice@example.com"), api.user("bob@example.com")
    client.post(
        "/api/users/jobs",
        headers=alice,
        json={"to": "x@example.com", "subject": "Alice's newsletter", "body": "b", "send_at": far},
    )
    client.post(
        "/api/users/jobs", headers=alice, json={"to": "x@example.com", "subject": XSS, "body": XSS, "send_at": far}
    )
    bobs = client.post(
        "/api/users/jobs",
        headers=bob,
        json={"to": "y@example.com", "subject": "Bob's invoice", "body": "b", "send_at": far},
    ).json
    client.post(f"/api/users/jobs/{bobs['id']}/cancel", headers=bob)

    page = open_browser()
    sign_in(page, "ada@example.com")
    page.get_by_role("link", name="All jobs").click()
    expect(page).to_have_url(re.compile(r"/admin/jobs$"))
    for subject in ("Alice's newsletter", XSS, "Bob's invoice"):
        expect(row(page, subject)).to_have_count(1)
    expect(row(page, "Bob's invoice").locator("td[data-label='Owner']")).to_have_text("bob@example.com")
    expect(page.locator("#job-rows script")).to_have_count(0)
    counts = page.get_by_role("navigation", name="Filter by status")
    expect(counts.get_by_role("link", name="PENDING 2")).to_be_visible()
    expect(counts.get_by_role("link", name="CANCELLED 1")).to_be_visible()

    # A job created elsewhere shows up, and the counts follow, without a reload.
    page.evaluate("window.sameDocument = true")
    client.post(
        "/api/users/jobs",
        headers=bob,
        json={"to": "y@example.com", "subject": "Bob's late addition", "body": "b", "send_at": far},
    )
    expect(row(page, "Bob's late addition")).to_have_count(1)
    expect(counts.get_by_role("link", name="PENDING 3")).to_be_visible()
    assert page.evaluate("window.sameDocument") is True
    screenshot(page, "admin-jobs")

    # Filter by status, then by owner on top of it, all in place.
    counts.get_by_role("link", name="CANCELLED 1").click()
    expect(page).to_have_url(re.compile(r"/admin/jobs\?status=CANCELLED$"))
    expect(page.locator("#job-rows tr")).to_have_count(1)
    expect(row(page, "Bob's invoice")).to_have_count(1)
    counts.get_by_role("link", name="PENDING 3").click()
    page.get_by_label("Owner email").fill("alice@example.com")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"/admin/jobs\?owner=alice%40example.com&status=PENDING$"))
    expect(page.locator("#job-rows tr")).to_have_count(2)
    expect(row(page, "Bob's late addition")).to_have_count(0)
    expect(counts.get_by_role("link", name="PENDING 2")).to_be_visible()  # counts follow the owner filter
    assert page.evaluate("window.sameDocument") is True

    page.get_by_role("link", name="Users").click()
    alice_row = page.locator("#user-rows tr", has_text="alice@example.com")
    expect(alice_row.locator(".role")).to_have_text("user")
    alice_row.get_by_role("button", name="Promote to admin").click()
    expect(alice_row.locator(".role")).to_have_text("admin")
    expect(alice_row.get_by_role("button", name="Demote to user")).to_be_visible()
    screenshot(page, "admin-users")

    # Bob is not an admin: no link, and the panel answers 403.
    bobs_page = open_browser()
    sign_in(bobs_page, "bob@example.com")
    expect(bobs_page.get_by_role("link", name="All jobs")).to_have_count(0)
    response = bobs_page.goto("/admin")
    assert response.status == 403
    expect(bobs_page.get_by_role("heading", name="Not allowed")).to_be_visible()
    screenshot(bobs_page, "forbidden", full_page=False)


def test_my_jobs_reads_well_at_phone_width(open_browser, api, client):
    page = open_browser(width=390, height=844)
    sign_up(page, "phone@example.com")
    schedule(page, "From my phone", datetime.now(ZoneInfo(ZONE)) + timedelta(days=1))
    expect(row(page, "From my phone")).to_have_count(1)
    # No sideways scrolling: the page is no wider than the phone.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "my-jobs-phone")


def test_an_admin_disables_and_enables_an_account_and_reads_the_audit_log(open_browser, app, monkeypatch):
    from webapp.services.accounts import users

    users.create_or_promote_admin("ada@example.com", PASSWORD)
    users.register("eve@example.com", PASSWORD)
    eves_page = open_browser()
    sign_in(eves_page, "eve@example.com")

    # Eve schedules too fast: the form stays, with what she typed and when to try again.
    monkeypatch.setitem(app.config, "JOB_CREATE_RATE_LIMIT", "1 per hour")
    schedule(eves_page, "First", datetime.now(ZoneInfo(ZONE)) + timedelta(days=1))
    eves_page.get_by_label("Subject").fill("Second")
    eves_page.get_by_role("button", name="Schedule").click()
    problem = eves_page.locator("#job-form-problem")
    expect(problem).to_contain_text("Too many emails scheduled in a short time. Try again in")
    expect(eves_page.get_by_label("Subject")).to_have_value("Second")

    page = open_browser()
    sign_in(page, "ada@example.com")
    page.get_by_role("link", name="Users").click()
    eve = page.locator("#user-rows tr", has_text="eve@example.com")
    eve.get_by_role("button", name="Disable").click()
    expect(eve.locator(".disabled-tag")).to_have_text("disabled")
    expect(eve.get_by_role("button", name="Enable")).to_be_visible()
    assert [kind for kind, _ in page.dialogs] == ["confirm"]
    myself = page.locator("#user-rows tr", has_text="ada@example.com")
    expect(myself.get_by_role("button", name="Disable")).to_have_count(0)
    screenshot(page, "admin-users-disabled")

    # Eve's open page is signed out on its next request. Its own live poll (every 2 s) gets there first
    # and takes it to the sign-in page; a reload racing that navigation is aborted by Chromium, so
    # wait for the page's own navigation, and reload only if none came.
    try:
        eves_page.wait_for_url(re.compile(r"/login\?next="), timeout=6000)
    except PlaywrightError:
        eves_page.reload()
    expect(eves_page).to_have_url(re.compile(r"/login\?next="))

    eve.get_by_role("button", name="Enable").click()
    expect(eve.locator(".disabled-tag")).to_have_count(0)

    page.get_by_role("link", name="Audit").click()
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    page.get_by_label("Action").select_option("account_disable")
    page.evaluate("window.sameDocument = true")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"/admin/audit\?actor=&action=account_disable$"))
    entries = page.locator("#audit-rows tr")
    expect(entries).to_have_count(1)
    expect(entries.locator("td[data-label='Target']")).to_have_text("eve@example.com")
    expect(entries.locator("td[data-label='Actor']")).to_have_text("ada@example.com")
    assert page.evaluate("window.sameDocument") is True
    page.get_by_label("Action").select_option("")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#audit-rows tr", has_text="Account enabled")).to_have_count(1)
    screenshot(page, "admin-audit")
