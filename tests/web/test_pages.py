"""The HTML pages without a browser: sign-in, the schedule form, live-table fragments, CSRF, roles, escaping."""

import re
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta

from tests.support.pages import PageClient
from tests.support.pages import make_admin
from tests.support.waiting import wait_for_status

XSS = "<script>alert(1)</script>"
# A year that stays within send_at's range (at most 10 years ahead) whenever the suite runs.
YEAR = datetime.now(UTC).year + 2


def stored_jobs():
    from webapp.models import Job

    return list(Job.objects.order_by("created_at"))


def schedule(pages, htmx=False, **fields):
    form = {"to": "reader@example.com", "subject": "Hello", "body": "Body", "send_at": "", "timezone": "Europe/Paris"}
    form.update(fields)
    return pages.post("/jobs", form, htmx=htmx)


# --- signing up, in and out ---------------------------------------------------------------


def test_root_sends_visitors_to_sign_in_and_members_to_their_jobs(pages):
    assert pages.get("/").headers["Location"].endswith("/login")
    pages.signup()
    assert pages.get("/").headers["Location"].endswith("/jobs")


def test_signing_up_signs_you_in_and_keeps_your_browser_time_zone(pages):
    response = pages.post(
        "/signup", {"email": "Newcomer@Example.com", "password": "correct-horse-9", "timezone": "America/New_York"}
    )
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = pages.get("/jobs").get_data(as_text=True)
    assert "newcomer@example.com" in page
    assert "Times are shown in America/New_York" in page
    from webapp.services.accounts import users

    assert users.find_user_by_email("newcomer@example.com").timezone == "America/New_York"


def test_sign_up_mistakes_are_shown_next_to_each_field_and_the_email_is_kept(pages):
    response = pages.post("/signup", {"email": "not-an-email", "password": "short"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="email-error"' in page and 'id="password-error"' in page
    assert 'aria-describedby="email-error"' in page and 'aria-invalid="true"' in page
    assert 'value="not-an-email"' in page
    assert 'value="short"' not in page  # passwords are never echoed back


def test_signing_up_twice_with_one_email_says_so(pages):
    pages.signup("twice@example.com")
    pages.logout()
    response = pages.post("/signup", {"email": "TWICE@example.com", "password": "another-password"})
    assert response.status_code == 409
    assert "is already registered" in response.get_data(as_text=True)


def test_wrong_password_and_unknown_email_read_the_same(pages):
    pages.signup("known@example.com")
    pages.logout()
    wrong = pages.login("known@example.com", "wrong-password")
    unknown = pages.login("nobody@example.com", "wrong-password")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong email or password." in wrong.get_data(as_text=True)
    assert "Wrong email or password." in unknown.get_data(as_text=True)


def test_sign_in_returns_to_the_page_asked_for_but_never_off_site(pages):
    pages.signup("back@example.com")
    pages.logout()
    asked = pages.get("/jobs?status=FAILED")
    assert asked.status_code == 302 and "next=" in asked.headers["Location"]
    response = pages.post(
        "/login", {"email": "back@example.com", "password": "correct-horse-9", "next": "/jobs?status=FAILED"}
    )
    assert response.headers["Location"] == "/jobs?status=FAILED"
    pages.logout()
    for evil in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = pages.post("/login", {"email": "back@example.com", "password": "correct-horse-9", "next": evil})
        assert response.headers["Location"] == "/jobs", evil
        pages.logout()


def test_signing_out_ends_the_session(pages):
    pages.signup()
    assert pages.logout().headers["Location"].endswith("/login")
    assert pages.get("/jobs").status_code == 302


def test_signing_in_updates_the_time_zone_from_the_browser(pages):
    email = pages.signup(timezone="Europe/Paris")
    pages.logout()
    pages.login(email, timezone="Asia/Tokyo")
    assert "Times are shown in Asia/Tokyo" in pages.get("/jobs").get_data(as_text=True)


def test_an_expired_session_inside_htmx_sends_the_browser_to_sign_in(pages):
    response = pages.get("/jobs/rows", htmx=True, headers={"HX-Current-URL": "http://localhost/jobs?status=FAILED"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login?next=/jobs?status%3DFAILED"


# --- the schedule form ------------------------------------------------------------------------


def test_the_form_reads_the_time_in_the_browsers_zone_and_stores_utc(pages):
    pages.signup(timezone="UTC")
    response = schedule(pages, send_at=f"{YEAR}-07-01T09:30:15", timezone="Europe/Paris")
    assert response.status_code == 302
    [job] = stored_jobs()
    assert job.send_at.replace(tzinfo=UTC) == datetime(YEAR, 7, 1, 7, 30, 15, tzinfo=UTC)  # Paris is UTC+2 in July
    page = pages.get("/jobs").get_data(as_text=True)
    assert "Times are shown in Europe/Paris" in page  # the zone was kept on the account
    assert f'<time datetime="{YEAR}-07-01T07:30:15.000Z">{YEAR}-07-01 09:30:15</time>' in page


def test_an_empty_date_means_send_now(pages):
    pages.signup()
    before = datetime.now(UTC)
    schedule(pages, send_at="")
    [job] = stored_jobs()
    assert abs((job.send_at.replace(tzinfo=UTC) - before).total_seconds()) < 5


def test_the_form_gives_the_apis_errors_inline_and_keeps_what_was_typed(pages, client, api):
    pages.signup()
    typed = {
        "to": "ok@example.com, not-an-address",
        "subject": "",
        "body": "x",
        "send_at": "2001-01-01T10:00",
        "timezone": "Europe/Paris",
    }
    response = schedule(pages, htmx=True, **typed)
    assert response.status_code == 422
    fragment = response.get_data(as_text=True)
    assert fragment.lstrip().startswith('<form id="job-form"')  # only the form, for HTMX to swap
    errors = dict(re.findall(r'<p class="error" id="([a-z_]+)-error">([^<]*)</p>', fragment))
    assert set(errors) == {"to", "subject", "send_at"}
    assert "&#39;not-an-address&#39;" in errors["to"]
    # The same rules as the API, word for word.
    api_errors = client.post(
        "/api/users/jobs",
        headers=api.user(),
        json={"to": ["not-an-address"], "subject": "", "body": "x", "send_at": "2001-01-01T09:00:00Z"},
    ).json
    api_fields = api_errors["error"]["fields"]
    assert errors["subject"] == api_fields["subject"]
    assert errors["send_at"] == api_fields["send_at"]
    assert errors["to"].endswith(api_fields["to.0"].replace("'", "&#39;"))
    assert 'value="ok@example.com, not-an-address"' in fragment and 'value="2001-01-01T10:00"' in fragment
    assert 'aria-describedby="to-hint to-error"' in fragment
    assert stored_jobs() == []


def test_a_bad_zone_is_an_inline_error_and_a_time_the_clocks_skip_moves_forward_like_the_api(pages, client, api):
    pages.signup()
    bad_zone = schedule(pages, send_at=f"{YEAR}-07-01T09:30", zone="Mars/Olympus_Mons")
    assert bad_zone.status_code == 422
    assert 'id="zone-error"' in bad_zone.get_data(as_text=True)
    assert stored_jobs() == []
    # 02:30 on the last Sunday of March does not exist in Paris (02:00 → 03:00): the API's rule moves it
    # forward by the gap, to 03:30 CEST, and the page says so.
    last_sunday = max(day for day in range(25, 32) if datetime(YEAR, 3, day).weekday() == 6)
    skipped = schedule(pages, htmx=True, send_at=f"{YEAR}-03-{last_sunday}T02:30", zone="Europe/Paris")
    assert skipped.status_code == 201
    assert f"for {YEAR}-03-{last_sunday} 03:30:00 (Europe/Paris)" in skipped.get_data(as_text=True)
    [job] = stored_jobs()
    api_job = client.post(
        "/api/users/jobs",
        headers=api.user(),
        json={
            "to": "a@example.com",
            "subject": "s",
            "body": "b",
            "send_at": f"{YEAR}-03-{last_sunday}T02:30:00",
            "timezone": "Europe/Paris",
        },
    ).json
    assert (
        job.send_at.replace(tzinfo=UTC)
        == datetime.fromisoformat(api_job["send_at"])
        == datetime(YEAR, 3, last_sunday, 1, 30, tzinfo=UTC)
    )


def test_scheduling_from_htmx_returns_a_fresh_form_and_tells_the_table_to_refresh(pages):
    pages.signup()
    response = schedule(pages, htmx=True, subject="Via htmx", send_at=f"{YEAR}-01-01T10:00")
    assert response.status_code == 201
    assert response.headers["HX-Trigger"] == "jobs-changed"
    fragment = response.get_data(as_text=True)
    assert f"Scheduled “Via htmx” for {YEAR}-01-01 10:00:00 (Europe/Paris)." in fragment
    assert 'name="subject" type="text" value=""' in fragment
    assert [job.subject for job in stored_jobs()] == ["Via htmx"]


# --- CSRF -------------------------------------------------------------------------------------


def test_a_form_post_without_the_csrf_token_is_refused_and_nothing_is_stored(pages):
    pages.signup()
    response = schedule(pages, subject="forged")  # with the token: accepted
    assert response.status_code == 302
    forged = pages.post("/jobs", {"to": "a@example.com", "subject": "forged 2", "body": "b"}, token=False)
    assert forged.status_code == 400
    page = forged.get_data(as_text=True)
    assert "security token is missing or out of date" in page and "Traceback" not in page
    forged_htmx = pages.post(
        "/jobs", {"to": "a@example.com", "subject": "forged 3", "body": "b"}, htmx=True, token=False
    )
    assert forged_htmx.status_code == 400
    assert [job.subject for job in stored_jobs()] == ["forged"]


def test_sign_out_and_cancel_need_the_token_too(pages):
    pages.signup()
    schedule(pages, send_at=f"{YEAR}-01-01T10:00")
    [job] = stored_jobs()
    assert pages.post(f"/jobs/{job.id}/cancel", token=False).status_code == 400
    assert pages.post("/logout", token=False).status_code == 400
    job.reload()
    assert job.status == "PENDING"
    assert pages.get("/jobs").status_code == 200  # still signed in


def test_every_page_carries_the_token_for_htmx_and_a_strict_csp(pages):
    pages.signup()
    response = pages.get("/jobs")
    page = response.get_data(as_text=True)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    assert f'hx-headers=\'{{"X-CSRFToken": "{token}"}}\'' in page
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe" not in csp
    assert "cdn" not in page.lower() and "https://" not in page


# --- the live table ---------------------------------------------------------------------------


def test_the_rows_fragment_answers_304_until_something_changes(pages):
    pages.signup()
    schedule(pages, subject="first", send_at=f"{YEAR}-01-01T10:00")
    page = pages.get("/jobs").get_data(as_text=True)
    page_etag = re.search(r"data-etag='(\"[^\"]+\")'", page).group(1)

    unchanged = pages.get("/jobs/rows", htmx=True, headers={"If-None-Match": page_etag})
    assert unchanged.status_code == 304 and unchanged.data == b""
    assert unchanged.headers["ETag"] == page_etag  # the page and its fragment agree

    schedule(pages, subject="second", send_at=f"{YEAR}-01-01T11:00")
    changed = pages.get("/jobs/rows", htmx=True, headers={"If-None-Match": page_etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != page_etag
    fragment = changed.get_data(as_text=True)
    assert fragment.lstrip().startswith("<tr")  # the table body's rows, then the out-of-band parts
    assert "second" in fragment and "first" in fragment
    assert 'id="status-counts" aria-label="Filter by status" hx-swap-oob="true"' in fragment
    assert changed.headers["Cache-Control"] == "no-store"


def test_the_table_filters_by_status_and_pages(pages):
    pages.signup()
    for number in range(23):
        schedule(pages, subject=f"job {number:02d}", send_at=f"{YEAR}-01-01T10:00")
    [first, *_] = stored_jobs()
    pages.post(f"/jobs/{first.id}/cancel")
    page = pages.get("/jobs").get_data(as_text=True)
    assert "Showing 1–20 of 23" in page and "Page 1 of 2" in page
    assert ">job 22<" in page and ">job 02<" not in page
    second = pages.get("/jobs?page=2", htmx=True).get_data(as_text=True)
    assert second.lstrip().startswith('<div id="job-results"')  # HTMX gets the results only
    assert ">job 02<" in second and ">job 00<" in second and "Showing 21–23 of 23" in second
    cancelled = pages.get("/jobs?status=CANCELLED").get_data(as_text=True)
    assert ">job 00<" in cancelled and ">job 01<" not in cancelled
    assert pages.get("/jobs?status=NOPE").status_code == 422


def test_cancel_from_the_row_and_a_job_that_cannot_be_cancelled(pages):
    pages.signup()
    schedule(pages, subject="later", send_at=f"{YEAR}-01-01T10:00")
    [job] = stored_jobs()
    response = pages.post(f"/jobs/{job.id}/cancel", htmx=True)
    assert response.status_code == 200
    row = response.get_data(as_text=True)
    assert row.lstrip().startswith(f'<tr id="job-{job.id}"') and ">CANCELLED<" in row
    assert "cancel-" not in row  # nothing left to cancel
    again = pages.post(f"/jobs/{job.id}/cancel", htmx=True)
    assert again.status_code == 409
    assert "can no longer be cancelled" in again.get_data(as_text=True)


def test_someone_elses_job_is_not_found(client, app):
    alice, bob = PageClient(client), PageClient(app.test_client())
    alice.signup()
    schedule(alice, send_at=f"{YEAR}-01-01T10:00")
    [job] = stored_jobs()
    bob.signup()
    assert bob.get(f"/jobs/{job.id}").status_code == 404
    assert bob.post(f"/jobs/{job.id}/cancel").status_code == 404
    assert bob.get("/jobs/not-an-id").status_code == 404


def test_the_detail_page_shows_the_message_and_attempt_history(pages):
    from webapp.models import Attempt

    pages.signup()
    schedule(pages, subject="Report", body="Line one\nLine two", send_at=f"{YEAR}-01-01T10:00")
    [job] = stored_jobs()
    started = datetime(YEAR, 1, 1, 9, 0, 1, tzinfo=UTC)
    job.attempts_log = [
        Attempt(
            worker="w1",
            started_at=started,
            finished_at=started + timedelta(seconds=1),
            outcome="retry",
            error="451 try later",
        )
    ]
    job.attempts, job.last_error = 1, "451 try later"
    job.save()
    page = pages.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert "Line one\nLine two" in page
    assert "Attempt history" in page and "451 try later" in page and ">retry<" in page
    assert f"{YEAR}-01-01 10:00:01" in page  # 09:00:01 UTC in Paris
    assert 'hx-trigger="every 2s' in page  # still PENDING: it keeps itself current


# --- escaping -----------------------------------------------------------------------------------


# --- the admin panel ----------------------------------------------------------------------------


def test_non_admins_get_a_403_page_and_no_admin_link(pages):
    pages.signup()
    page = pages.get("/jobs").get_data(as_text=True)
    assert "/admin" not in page
    for path in ("/admin", "/admin/jobs", "/admin/users", "/admin/jobs/rows"):
        response = pages.get(path)
        assert response.status_code == 403, path
        assert "Not allowed" in response.get_data(as_text=True)
    assert pages.post(f"/admin/users/{'0' * 24}/role", {"role": "admin"}).status_code == 403


def test_visitors_are_sent_to_sign_in_from_the_admin_panel(pages):
    response = pages.get("/admin")
    assert response.status_code == 302 and "/login?next=/admin" in response.headers["Location"]


def test_admin_sees_everyones_jobs_with_counts_and_filters(client, app):
    make_admin("root@example.com")
    alice, bob = PageClient(client), PageClient(app.test_client())
    alice.signup("alice@example.com")
    schedule(alice, subject="from alice", send_at=f"{YEAR}-01-01T10:00")
    bob.signup("bob@example.com")
    schedule(bob, subject="from bob", send_at=f"{YEAR}-01-01T10:00")
    [_, bobs] = stored_jobs()
    bob.post(f"/jobs/{bobs.id}/cancel")

    admin = PageClient(app.test_client())
    admin.login("root@example.com")
    page = admin.get("/admin/jobs").get_data(as_text=True)
    assert "from alice" in page and "from bob" in page
    assert "alice@example.com" in page and "bob@example.com" in page
    counts = dict(re.findall(r">([A-Z_]+) <span class=\"count\">(\d+)</span>", page))
    assert counts["PENDING"] == "1" and counts["CANCELLED"] == "1" and counts["COMPLETED"] == "0"
    by_status = admin.get("/admin/jobs?status=CANCELLED").get_data(as_text=True)
    assert "from bob" in by_status and "from alice" not in by_status
    by_owner = admin.get("/admin/jobs?owner=ALICE@example.com").get_data(as_text=True)
    assert "from alice" in by_owner and "from bob" not in by_owner
    unknown = admin.get("/admin/jobs?owner=nobody@example.com").get_data(as_text=True)
    assert "No account has this email or id." in unknown and "from alice" not in unknown
    assert 'href="/admin"' in page and 'href="/admin/jobs"' in page and 'href="/admin/users"' in page


def test_admin_promotes_and_demotes_but_never_the_last_admin(client, app):
    root = make_admin("root@example.com")
    user = PageClient(client)
    user.signup("carol@example.com")
    from webapp.services.accounts import users

    carol = users.find_user_by_email("carol@example.com")
    admin = PageClient(app.test_client())
    admin.login("root@example.com")
    page = admin.get("/admin/users").get_data(as_text=True)
    assert "Last admin: promote someone else first" in page

    promoted = admin.post(f"/admin/users/{carol.id}/role", {"role": "admin"}, htmx=True)
    assert promoted.status_code == 200
    rows = promoted.get_data(as_text=True)
    assert 'Demote to user<span class="visually-hidden">: carol@example.com' in rows
    assert "Last admin" not in rows  # two admins now: either may be demoted
    assert user.get("/admin").status_code == 200  # at once, no new sign-in needed

    assert admin.post(f"/admin/users/{carol.id}/role", {"role": "user"}).status_code == 302
    assert user.get("/admin").status_code == 403
    refused = admin.post(f"/admin/users/{root.id}/role", {"role": "user"}, htmx=True)
    assert refused.status_code == 409
    assert "The last admin cannot be demoted" in refused.get_data(as_text=True)
    assert users.find_user_by_email("root@example.com").is_admin


def test_admin_requeues_a_failed_job_and_it_goes_out(client, app, consumer, smtp):
    make_admin("root@example.com")
    user = PageClient(client)
    user.signup()
    smtp.reject_recipients({"moved@example.com": "550 5.1.1 No such user"})
    schedule(user, subject="bounced", to="moved@example.com")
    [job] = stored_jobs()
    wait_for_status(job.id, {"FAILED"}, timeout=15)

    admin = PageClient(app.test_client())
    admin.login("root@example.com")
    failed = admin.get("/admin/jobs?status=FAILED").get_data(as_text=True)
    assert "bounced" in failed and "550 5.1.1 No such user" in failed and f'id="requeue-{job.id}"' in failed
    smtp.reset_faults()  # the mailbox exists again
    response = admin.post(f"/admin/jobs/{job.id}/requeue", htmx=True)
    assert response.status_code == 200
    assert response.get_data(as_text=True).lstrip().startswith(f'<tr id="job-{job.id}"')
    wait_for_status(job.id, {"COMPLETED"}, timeout=15)
    [message] = smtp.wait_for(1)
    assert message.message_id == job.message_id
    again = admin.post(f"/admin/jobs/{job.id}/requeue", htmx=True)
    assert again.status_code == 409
    assert "Only FAILED or IN_DOUBT jobs can be requeued" in again.get_data(as_text=True)


# --- throttling ---------------------------------------------------------------------------------


def test_sign_in_is_throttled_per_account_and_per_ip(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_RATE_LIMIT", "3 per minute")
    run = uuid.uuid4().hex[:8]  # fresh buckets in Redis, even when the suite runs twice in a minute
    ip = lambda n: f"10.{int(run[:2], 16)}.{int(run[2:4], 16)}.{n}"  # noqa: E731
    target = f"target-{run}@example.com"

    first = PageClient(client, ip=ip(1))
    statuses = [first.login(target, "wrong-password").status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert "Too many sign-in attempts" in first.login(target, "x").get_data(as_text=True)
    # Another machine, same account: one try (it might be the owner: tests/accounts/test_sign_in_and_secrets.py), then
    # refused by the per-account bucket, on the API too.
    other = PageClient(app.test_client(), ip=ip(2))
    assert other.login(target, "wrong-password").status_code == 401
    assert other.login(target, "wrong-password").status_code == 429
    api = other.client.post(
        "/api/auth/login", json={"email": target.upper(), "password": "x"}, environ_base={"REMOTE_ADDR": ip(2)}
    )
    assert api.status_code == 429 and api.json["error"]["message"].startswith("Too many sign-in attempts")
    # One machine, many accounts: refused after the limit too (the per-IP bucket).
    sprayer = PageClient(app.test_client(), ip=ip(4))
    statuses = [sprayer.login(f"{n}-{run}@example.com", "x").status_code for n in range(4)]
    assert statuses == [401, 401, 401, 429]
    # Showing the sign-in page is not an attempt.
    assert sprayer.get("/login").status_code == 200
