"""The status page and the admin panel through the test client: every admin route is for admins,
the board's poll is a 304 until a figure changes, the jobs table's new address, the pause switch."""

import re
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from tests.support.pages import PageClient
from tests.support.status import create_job
from tests.support.waiting import iso


@pytest.fixture(autouse=True)
def delivery_not_paused(app):
    """Each test starts and ends with delivery running: a pause left behind would stop the whole suite."""
    from webapp.models import DeliveryControl

    DeliveryControl._get_collection().delete_many({})
    yield
    DeliveryControl._get_collection().delete_many({})


@pytest.fixture()
def admin(api):
    return api.admin()


# --- every admin route is for admins -------------------------------------------------------------------


def admin_routes(app):
    """(method, path, rule) of every route under /admin and /api/admin, arguments filled with a fake id."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/admin") or rule.rule.startswith("/api/admin")):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?[^<>]+>", "0" * 24, rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((method, path, rule.rule))
    return routes


def test_non_admins_get_403_on_every_admin_route(app, client, api):
    routes = admin_routes(app)
    rules = {rule for _, _, rule in routes}
    # The enumeration sees the routes this issue added (and so will see the next one).
    assert {
        "/admin",
        "/admin/status/board",
        "/admin/delivery/pause",
        "/admin/delivery/resume",
        "/admin/jobs",
        "/api/admin/stats",
        "/api/admin/delivery/pause",
        "/api/admin/delivery/resume",
    } <= rules
    assert len(routes) >= 20

    bearer = api.user()
    person = PageClient(app.test_client())
    person.signup()
    visitor = PageClient(app.test_client())
    for method, path, _ in routes:
        if path.startswith("/api/"):
            as_user = client.open(path, method=method, headers=bearer, json={})
            assert as_user.status_code == 403, (method, path, as_user.status_code)
            assert as_user.json["error"]["code"] == "forbidden"
            assert client.open(path, method=method, json={}).status_code == 401, (method, path)
        elif method == "GET":
            assert person.get(path).status_code == 403, (method, path)
            assert visitor.get(path).status_code == 302, (method, path)
        else:  # a form post with a valid CSRF token still stops at the role check
            assert person.post(path, {}).status_code == 403, (method, path)
            assert person.post(path, {}, htmx=True).status_code == 403, (method, path)
            assert visitor.post(path, {}).status_code == 302, (method, path)


# --- the page without a browser ------------------------------------------------------------------------------


@pytest.fixture()
def admin_pages(app, admin, client):
    pages = PageClient(app.test_client())
    pages.login(client.get("/api/users/me", headers=admin).json["email"])
    return pages


def test_the_status_board_poll_is_304_until_a_figure_changes(admin_pages, client, api):
    page = admin_pages.get("/admin")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    etag = re.search(r'id="status-board"[^>]*data-etag=\'"([0-9a-f]+)"\'', html, re.S).group(1)
    assert 'aria-current="page">Status<' in html
    assert html.count('class="chart-svg"') == 2

    unchanged = admin_pages.get("/admin/status/board", htmx=True, headers={"If-None-Match": f'"{etag}"'})
    if unchanged.status_code == 200:  # a minute turned between the two requests: the chart's axis moved
        etag = unchanged.headers["ETag"].strip('"')
        unchanged = admin_pages.get("/admin/status/board", htmx=True, headers={"If-None-Match": f'"{etag}"'})
    assert unchanged.status_code == 304 and unchanged.get_data() == b""

    create_job(client, api.user(), subject="Changes a count", send_at=iso(datetime.now(UTC) + timedelta(days=1)))
    changed = admin_pages.get("/admin/status/board", htmx=True, headers={"If-None-Match": f'"{etag}"'})
    assert changed.status_code == 200
    assert changed.headers["ETag"].strip('"') != etag
    assert re.search(
        r'id="tile-pending">\s*<span class="tile-label">Pending</span>\s*<span class="tile-value">1<',
        changed.get_data(as_text=True),
    )


def test_the_jobs_table_moved_to_admin_jobs_and_old_links_still_work(admin_pages):
    old = admin_pages.get("/admin?status=FAILED")
    assert old.status_code == 302 and old.headers["Location"] == "/admin/jobs?status=FAILED"
    rows = admin_pages.get("/admin/rows?status=FAILED", htmx=True)
    assert rows.status_code == 308 and rows.headers["Location"] == "/admin/jobs/rows?status=FAILED"
    table = admin_pages.get("/admin/jobs").get_data(as_text=True)
    assert 'hx-get="/admin/jobs/rows"' in table and 'aria-current="page">All jobs<' in table
    assert admin_pages.get("/admin/jobs/rows", htmx=True).status_code == 200


def test_the_pause_switch_on_the_page_pauses_and_resumes(admin_pages):
    from webapp.services.delivery import pause

    response = admin_pages.post("/admin/delivery/pause", {}, htmx=True)
    assert response.status_code == 200
    board = response.get_data(as_text=True)
    assert "Delivery is paused" in board and 'id="resume-delivery"' in board
    assert pause.read_pause() is not None
    plain = admin_pages.post("/admin/delivery/resume", {})
    assert plain.status_code == 302 and plain.headers["Location"] == "/admin"
    assert pause.read_pause() is None
    assert "Delivery resumed: 0 due jobs queued now." in admin_pages.get("/admin").get_data(as_text=True)
    refused = admin_pages.post("/admin/delivery/pause", {}, token=False)
    assert refused.status_code == 400 and pause.read_pause() is None  # CSRF like every other form
