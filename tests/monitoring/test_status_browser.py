"""The admin status page in a real browser: the chart draws, a live consumer is listed, pause and resume work.

Against a live server, the suite's shared consumer (a real `huey_consumer`, heartbeat every 2 s) and the
test SMTP server. Screenshots (desktop and phone) go where tests/web/test_browser.py puts its own.
"""

import re
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from tests.support.browser import PASSWORD
from tests.support.browser import screenshot
from tests.support.browser import sign_in
from tests.support.status import clear_figures
from tests.support.waiting import wait_until

ADMIN = "ops@example.com"


@pytest.fixture(autouse=True)
def delivery_not_paused(app):
    from webapp.models import DeliveryControl

    DeliveryControl._get_collection().delete_many({})
    yield
    DeliveryControl._get_collection().delete_many({})


def seed_history(days=29):
    """Figures for the past days (the 30-day chart would otherwise show today alone)."""
    from webapp.services.monitoring import delivery_stats
    from webapp.services.monitoring.tally import MinuteFigures

    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    delivery_stats.flush(
        {
            today - timedelta(days=back): MinuteFigures(
                sent=40 + (back * 37) % 90, failed=back % 4, retried=(back * 7) % 9
            )
            for back in range(1, days + 1)
        }
    )


def create_job(client, headers, subject):
    response = client.post(
        "/api/users/jobs", headers=headers, json={"to": "reader@example.com", "subject": subject, "body": "Hello."}
    )
    assert response.status_code == 201, response.json
    return response.json


def test_an_admin_watches_delivery_then_pauses_and_resumes_it_from_the_status_page(
    open_browser, consumer, smtp, api, client
):
    from webapp.models import Job
    from webapp.services.accounts import users

    users.create_or_promote_admin(ADMIN, PASSWORD)
    clear_figures()
    seed_history()
    user = api.user()
    page = open_browser()
    sign_in(page, ADMIN)
    page.get_by_role("link", name="Status").click()
    expect(page).to_have_url(re.compile(r"/admin$"))
    expect(page.get_by_role("heading", name="Delivery status")).to_be_visible()

    # The live consumer is listed, with its threads.
    worker_row = page.locator("#worker-rows tr", has_text=f":{consumer.process.pid}")
    expect(worker_row.locator("td[data-label='State']")).to_have_text("alive")
    expect(worker_row.locator("td[data-label='Threads']")).to_have_text("4")

    # Two emails go out; the throughput chart draws them without a reload.
    page.evaluate("window.sameDocument = true")
    for n in range(2):
        create_job(client, user, f"Chart {n}")
    smtp.wait_for(2)
    expect(page.locator("#chart-throughput rect.bar-sent")).to_have_count(1, timeout=15_000)
    expect(page.locator("#chart-throughput .legend-sent")).to_have_text("2 sent")
    expect(page.locator("#chart-history rect.bar-sent")).to_have_count(30)
    expect(page.locator("#tile-completed .tile-value")).to_have_text("2")
    expect(page.locator("#tile-lateness dd").first).to_have_text(re.compile(r"^\d+\.\d\d s$"))
    expect(page.locator("#tile-smtp .tile-value")).to_have_text("OK")
    assert page.evaluate("window.sameDocument") is True

    # Pause: a due job is held back.
    page.get_by_role("button", name="Pause delivery").click()
    expect(page.get_by_text("Delivery is paused", exact=False).first).to_be_visible()
    expect(page.get_by_text("Seen by 1 of 1 live consumer")).to_be_visible(timeout=15_000)
    held = create_job(client, user, "Held during the incident")
    page.wait_for_timeout(3_000)
    assert Job.objects.get(id=held["id"]).status == "PENDING"
    assert smtp.count_by_message_id()[held["message_id"]] == 0
    expect(page.locator("#tile-pending .tile-value")).to_have_text("1", timeout=10_000)
    screenshot(page, "admin-status-paused", full_page=False)

    # Resume: it goes out at once, once.
    page.get_by_role("button", name="Resume delivery").click()
    expect(page.get_by_text("Delivery resumed: 1 due job queued now.")).to_be_visible()
    wait_until(lambda: smtp.count_by_message_id()[held["message_id"]] == 1, 10, "the held job to go out")
    expect(page.locator("#tile-completed .tile-value")).to_have_text("3", timeout=10_000)
    expect(page.locator("#chart-throughput .legend-sent")).to_have_text("3 sent", timeout=10_000)
    expect(page.get_by_role("button", name="Pause delivery")).to_be_visible()
    assert smtp.count_by_message_id()[held["message_id"]] == 1
    assert page.evaluate("window.sameDocument") is True
    screenshot(page, "admin-status")

    # The failed count links to its filtered table.
    page.locator("#tile-failed").click()
    expect(page).to_have_url(re.compile(r"/admin/jobs\?status=FAILED$"))


def test_the_status_page_reads_well_on_a_phone_and_unchanged_polls_are_304(open_browser, consumer, app):
    from webapp.services.accounts import users

    users.create_or_promote_admin(ADMIN, PASSWORD)
    page = open_browser(width=390, height=844)
    sign_in(page, ADMIN)
    page.goto("/admin")
    expect(page.locator("#worker-rows tr", has_text=f":{consumer.process.pid}")).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "admin-status-phone")

    polls = []
    page.on("response", lambda r: polls.append(r.status) if "/admin/status/board" in r.url else None)
    page.evaluate("document.getElementById('status-board').dataset.untouched = 'yes'")
    # Polls come every 5 s. Earlier tests' queued retries may still move a figure once or twice;
    # once they settle, an unchanged board must come back 304.
    for _ in range(5):
        page.wait_for_timeout(5_500)
        if 304 in polls:
            break
    assert 304 in polls, polls
    if 200 not in polls:  # nothing changed (no minute turned on the chart): the board was left alone
        assert page.evaluate("document.getElementById('status-board').dataset.untouched") == "yes"
