"""The doors, tried as an attacker would: markup where text goes, line breaks where headers go,
other people's jobs, and the headers every answer carries.

The limits, the quota, disabled accounts and the audit log have their own modules
(test_security_limits.py, test_security_accounts.py, test_security_audit.py). Here: the
Flask test client against the real FerretDB and Redis, and a real Huey consumer and SMTP
server where an email going out is the proof.
"""

import re
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from tests.support.pages import PASSWORD
from tests.support.pages import PageClient
from tests.support.pages import make_admin

ZERO_ID = "000000000000000000000000"
# Markup in text, an attribute break-out in a quoted display name, and an entity that must not be decoded.
SCRIPT = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(2)">'
BREAKOUT_NAME = 'x" onmouseover="alert(3)'
ENTITY = "&lt;b&gt;not bold&lt;/b&gt;"


def tomorrow_form():
    return (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")


def stored_jobs():
    from webapp.models import Job

    return list(Job.objects.order_by("created_at"))


def static_file(client):
    """The stylesheet's answer, read whole and closed (a streamed file left open warns)."""
    response = client.get("/static/css/app.css", buffered=True)
    response.close()
    return response


@pytest.fixture()
def user(app, client):
    pages = PageClient(client)
    pages.signup()
    return pages


# --- markup where text goes -------------------------------------------------------------------


def test_markup_in_subject_body_and_recipients_is_shown_as_text_on_every_page(app, user):
    from webapp.models import Job

    quoted_name = BREAKOUT_NAME.replace('"', '\\"')
    recipient = f'"{quoted_name}" <victim@example.com>'
    scheduled = user.post(
        "/jobs",
        {
            "to": recipient,
            "subject": f"{SCRIPT} {ENTITY}",
            "body": f"{IMG}\n{SCRIPT}",
            "send_at": tomorrow_form(),
            "timezone": "UTC",
        },
    )
    assert scheduled.status_code == 302
    [job] = stored_jobs()
    assert job.to == [recipient]  # kept as typed, display name included
    admin = PageClient(app.test_client())
    make_admin(pages=admin)
    flash_page = user.get("/jobs")  # the flash message names the subject
    failed = Job.objects(id=job.id).modify(new=True, set__status="FAILED", set__last_error=f"550 {SCRIPT}")

    seen = {
        "/jobs (with the flash)": flash_page,
        "/jobs/rows": user.get("/jobs/rows", htmx=True),
        "/jobs/<id>": user.get(f"/jobs/{job.id}"),
        "/jobs/<id> fragment": user.get(f"/jobs/{job.id}", htmx=True),
        "/admin/jobs": admin.get("/admin/jobs"),
        "/admin/jobs/rows": admin.get("/admin/jobs/rows", htmx=True),
        "/admin/jobs/<id>": admin.get(f"/admin/jobs/{job.id}"),
        "/admin requeue row": admin.post(f"/admin/jobs/{failed.id}/requeue", htmx=True),
    }
    for where, response in seen.items():
        assert response.status_code == 200, where
        page = response.get_data(as_text=True)
        for raw in (SCRIPT, IMG, 'onmouseover="alert(3)', "<b>not bold</b>"):
            assert raw not in page, (where, raw)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, where
        assert "&amp;lt;b&amp;gt;" in page, where  # an entity typed is shown as typed, not decoded
    for where in ("/jobs/<id>", "/admin/jobs/<id>"):
        page = seen[where].get_data(as_text=True)
        assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in page, where
        assert "onmouseover=&#34;alert(3)" in page or "onmouseover=\\&#34;alert(3)" in page, where


def test_markup_typed_at_sign_in_is_shown_as_text_in_the_audit_log(app, client):
    PageClient(client).login(f"{SCRIPT}@example.com", "guess")
    client.post("/api/auth/login", json={"email": IMG, "password": "guess"})
    admin = PageClient(app.test_client())
    make_admin(pages=admin)
    for response in (admin.get("/admin/audit"), admin.get("/admin/audit?action=sign_in", htmx=True)):
        page = response.get_data(as_text=True)
        assert SCRIPT not in page and IMG not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;@example.com" in page
        assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in page


def test_a_script_that_slipped_through_could_not_run_the_csp_allows_none(user):
    csp = user.get("/jobs").headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp


# --- line breaks where a header goes ----------------------------------------------------------

LINE_BREAKS = ["\r\n", "\n", "\r", "\u2028", "\x85", "\x00"]


@pytest.mark.parametrize("breaker", LINE_BREAKS, ids=["crlf", "lf", "cr", "u2028", "nel", "nul"])
def test_a_line_break_in_any_header_field_is_refused_and_nothing_is_stored(client, api, breaker):
    headers = api.user()
    injected = f"Bcc: victim@example.com{breaker}X-Evil: 1"
    attempts = {
        "subject": {"subject": f"Hello{breaker}{injected}"},
        "to.0": {"to": f"reader@example.com{breaker}{injected}"},
        "to.1": {"to": ["reader@example.com", f'"Reader{breaker}Bcc: victim@example.com" <r2@example.com>']},
    }
    for field, fields in attempts.items():
        body = {"to": "reader@example.com", "subject": "s", "body": "b", **fields}
        refused = client.post("/api/users/jobs", json=body, headers=headers)
        assert refused.status_code == 422, (field, refused.json)
        assert field in refused.json["error"]["fields"], (field, refused.json)
    assert stored_jobs() == []


def test_the_form_refuses_a_line_break_in_the_subject_inline(user):
    refused = user.post(
        "/jobs",
        {
            "to": "reader@example.com",
            "subject": "Hi\r\nBcc: victim@example.com",
            "body": "b",
            "send_at": "",
            "timezone": "UTC",
        },
        htmx=True,
    )
    assert refused.status_code == 422
    assert "must be a single line without line breaks" in refused.get_data(as_text=True)
    assert stored_jobs() == []


def test_header_lookalikes_in_the_body_stay_in_the_body_on_the_wire(client, api, consumer, smtp):
    body = "Dear reader,\r\nBcc: victim@example.com\r\n\r\n.\r\nMAIL FROM:<evil@example.com>\r\nthe end"
    job = client.post(
        "/api/users/jobs",
        headers=api.user(),
        json={"to": "reader@example.com", "subject": "To: victim@example.com", "body": body},
    ).json
    [message] = smtp.wait_for(1, timeout=20)
    assert message.message_id == job["message_id"]
    assert message.rcpt_tos == ["reader@example.com"]  # one envelope recipient: nobody was added
    assert message.message["Bcc"] is None and message.message.get_all("To") == ["reader@example.com"]
    assert message.message["Subject"] == "To: victim@example.com"
    text = message.message.get_content()
    assert "Bcc: victim@example.com" in text and "MAIL FROM:<evil@example.com>" in text and "the end" in text


def test_a_line_break_in_the_return_address_after_sign_in_is_not_a_header(app, client):
    from webapp.services.accounts import users

    users.register("ada@example.com", PASSWORD)
    pages = PageClient(client)
    for target in ("/jobs\r\nSet-Cookie: evil=1", "/\t/evil.example", "/jobs\nLocation: https://evil.example"):
        signed_in = pages.post("/login", {"email": "ada@example.com", "password": PASSWORD, "next": target})
        assert signed_in.status_code == 302, target
        assert signed_in.headers["Location"] == "/jobs", target
        assert "evil" not in str(signed_in.headers)
        # Signed in already, the sign-in page sends you on with the same rule.
        again = client.get("/login", query_string={"next": target})
        assert again.status_code == 302 and again.headers["Location"] == "/jobs", target
        pages.logout()


# --- other people's jobs ------------------------------------------------------------------------


def test_another_users_job_cannot_be_read_or_cancelled_through_the_api(client, api):
    alice, mallory = api.user(), api.user()
    job = client.post(
        "/api/users/jobs",
        headers=alice,
        json={
            "to": "reader@example.com",
            "subject": "private",
            "body": "secret plans",
            "send_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        },
    ).json
    for method, path in (("get", f"/api/users/jobs/{job['id']}"), ("post", f"/api/users/jobs/{job['id']}/cancel")):
        response = getattr(client, method)(path, headers=mallory)
        assert response.status_code == 404 and response.json["error"]["code"] == "not_found", path
        assert "secret" not in response.get_data(as_text=True)
    # The list is the caller's own whatever the query says.
    listed = client.get(f"/api/users/jobs?owner_id={job['owner_id']}&owner={job['owner_id']}", headers=mallory)
    assert listed.status_code == 200 and listed.json["items"] == []
    for path in (f"/api/admin/jobs/{job['id']}", "/api/admin/audit", f"/api/admin/jobs/{job['id']}/retry"):
        method = client.post if path.endswith("retry") else client.get
        assert method(path, headers=mallory).status_code == 403, path
    assert client.get(f"/api/users/jobs/{job['id']}", headers=alice).json["status"] == "PENDING"


def test_another_users_job_cannot_be_read_or_cancelled_through_the_pages(app, client):
    alice, mallory = PageClient(client), PageClient(app.test_client())
    alice.signup()
    alice.post(
        "/jobs",
        {
            "to": "reader@example.com",
            "subject": "private",
            "body": "secret plans",
            "send_at": tomorrow_form(),
            "timezone": "UTC",
        },
    )
    [job] = stored_jobs()
    mallory.signup()
    attempts = [
        mallory.get(f"/jobs/{job.id}"),
        mallory.get(f"/jobs/{job.id}", htmx=True),
        mallory.post(f"/jobs/{job.id}/cancel"),
        mallory.post(f"/jobs/{job.id}/cancel", htmx=True),
    ]
    for response in attempts:
        assert response.status_code == 404
        text = response.get_data(as_text=True)
        assert "secret plans" not in text and "private" not in text
    rows = mallory.get(f"/jobs/rows?owner={job.owner_id}", htmx=True).get_data(as_text=True)
    assert "private" not in rows
    for path in (f"/admin/jobs/{job.id}", "/admin/audit", "/admin/users"):
        assert mallory.get(path).status_code == 403, path
    assert mallory.post(f"/admin/jobs/{job.id}/requeue").status_code == 403
    assert mallory.post(f"/admin/users/{job.owner_id}/disable").status_code == 403
    job.reload()
    assert job.status == "PENDING"


# --- headers and cookies ------------------------------------------------------------------------


def test_every_answer_forbids_framing_and_limits_referrers_and_features(app, client, api, user):
    answers = {
        "sign-in page": client.get("/login"),
        "jobs page": user.get("/jobs"),
        "API": client.get("/api/users/me", headers=api.user()),
        "API error": client.get("/api/users/me"),
        "page error": user.get("/jobs/not-an-id"),
        "static": static_file(client),
    }
    for where, response in answers.items():
        headers = response.headers
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], where
        assert headers["X-Frame-Options"] == "DENY", where
        assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin", where
        policy = headers["Permissions-Policy"]
        assert all(f"{feature}=()" in policy for feature in ("camera", "microphone", "geolocation", "payment")), where
        assert headers["X-Content-Type-Options"] == "nosniff", where


def test_api_answers_and_signed_in_pages_are_never_stored_by_a_cache(app, client, api, user):
    token = client.post("/api/auth/login", json={"email": user_email(api), "password": PASSWORD})
    private = {
        "the token": token,
        "the caller": client.get("/api/users/me", headers={"Authorization": f"Bearer {token.json['access_token']}"}),
        "a refusal": client.get("/api/users/jobs"),
        "a page": user.get("/jobs"),
        "a fragment": user.get("/jobs/rows", htmx=True),
    }
    for where, response in private.items():
        assert response.headers["Cache-Control"] == "no-store", where
    # Public files may be cached: the rule is about people's data, not everything.
    assert "no-store" not in static_file(client).headers.get("Cache-Control", "")
    assert "no-store" not in app.test_client().get("/login").headers.get("Cache-Control", "")


def user_email(api):
    email = f"user-{uuid.uuid4().hex[:10]}@example.com"
    assert api.register(email).status_code == 201
    return email


def test_the_session_cookie_is_not_for_scripts_nor_for_cross_site_posts(app, client):
    pages = PageClient(client)
    response = pages.post("/signup", {"email": f"u-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD})
    cookie = response.headers["Set-Cookie"]
    assert re.search(r"; HttpOnly", cookie) and re.search(r"; SameSite=Lax", cookie)


# --- 429s on the pages: the form again, with the reason inline ------------------------------------


def test_the_sign_in_and_sign_up_pages_say_inline_when_to_try_again(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_RATE_LIMIT", "2 per minute")
    monkeypatch.setitem(app.config, "SIGNUP_RATE_LIMIT", "1 per hour")
    ip = f"10.77.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    pages = PageClient(client, ip=ip)
    assert [pages.login("ada@example.com", "guess").status_code for _ in range(2)] == [401, 401]
    refused = pages.login("ada@example.com", "guess")
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
    page = refused.get_data(as_text=True)
    assert re.search(r"Too many sign-in attempts\. Try again in \d+ seconds?\.", page)
    assert '<form class="stack" method="post" action="/login">' in page and 'value="ada@example.com"' in page

    assert pages.post("/signup", {"email": "first@example.com", "password": PASSWORD}).status_code == 302
    pages.logout()
    again = pages.post("/signup", {"email": "second@example.com", "password": PASSWORD})
    assert again.status_code == 429 and 3000 < int(again.headers["Retry-After"]) <= 3600
    text = again.get_data(as_text=True)
    assert re.search(r"Too many sign-ups from this address\. Try again in (59|60) minutes\.", text)
    assert 'value="second@example.com"' in text and PASSWORD not in text
