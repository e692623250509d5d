"""Limits on an account, tried as an attacker (or a runaway script) would.

The pending quota, and an admin disabling an account that holds an old token and an old
browser session, and whose emails must wait. (Its audit log: test_security_audit.py.)
Real FerretDB, Redis, Huey consumer and SMTP server; the API and pages through Flask's
test client.
"""

import threading
import time
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from tests.support.pages import PASSWORD
from tests.support.pages import PageClient
from tests.support.security import ZERO_ID
from tests.support.security import in_
from tests.support.security import job_payload
from tests.support.security import me
from tests.support.security import page_form
from tests.support.security import stored_subjects

# --- the pending quota --------------------------------------------------------------------------


def test_one_pending_job_past_the_quota_is_a_429_that_names_it(app, client, api, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_PENDING_JOBS_PER_USER", 3)
    headers = api.user()
    created = [
        client.post("/api/users/jobs", json=job_payload(f"job {n}", in_(3600 * (n + 1))), headers=headers)
        for n in range(3)
    ]
    assert [response.status_code for response in created] == [201] * 3

    refused = client.post("/api/users/jobs", json=job_payload("one too many"), headers=headers)
    assert refused.status_code == 429
    error = refused.json["error"]
    assert error["code"] == "quota_exceeded" and "at most 3 pending emails per account" in error["message"]
    # Room comes back when the earliest pending one is due, in an hour.
    assert 3500 <= int(refused.headers["Retry-After"]) <= 3600
    assert stored_subjects() == ["job 0", "job 1", "job 2"]

    # Only PENDING jobs count: cancel one and there is room for exactly one more.
    assert client.post(f"/api/users/jobs/{created[0].json['id']}/cancel", headers=headers).status_code == 200
    assert client.post("/api/users/jobs", json=job_payload("in its place"), headers=headers).status_code == 201
    assert client.post("/api/users/jobs", json=job_payload("again too many"), headers=headers).status_code == 429
    # Each account has its own quota.
    assert client.post("/api/users/jobs", json=job_payload("someone else"), headers=api.user()).status_code == 201


def test_the_quota_on_the_page_is_an_inline_message_and_admins_are_not_exempt_by_default(app, monkeypatch):
    from webapp.services.accounts import users

    monkeypatch.setitem(app.config, "MAX_PENDING_JOBS_PER_USER", 1)
    users.create_or_promote_admin("root@example.com", PASSWORD)
    admin = PageClient(app.test_client())
    admin.login("root@example.com")
    assert admin.post("/jobs", page_form("first"), htmx=True).status_code == 201
    refused = admin.post("/jobs", page_form("second"), htmx=True)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 60
    body = refused.get_data(as_text=True)
    assert body.lstrip().startswith('<form id="job-form"') and 'value="second"' in body  # what was typed is kept
    assert "Quota reached: at most 1 pending emails per account." in body
    whole_page = admin.post("/jobs", page_form("third"))
    assert whole_page.status_code == 429 and "Quota reached" in whole_page.get_data(as_text=True)
    assert stored_subjects() == ["first"]

    monkeypatch.setitem(app.config, "QUOTA_EXEMPT_ADMINS", True)
    assert admin.post("/jobs", page_form("exempt"), htmx=True).status_code == 201


# --- disabling an account -----------------------------------------------------------------------


def test_a_disabled_account_is_shut_out_at_once_old_token_and_old_session_included(app, client, api):
    admin = api.admin()
    email = f"mallory-{uuid.uuid4().hex[:6]}@example.com"
    token = api.user(email)
    user_id = me(client, token)["id"]
    browser = PageClient(app.test_client())
    assert browser.login(email).status_code == 302
    csrf = browser.csrf_token("/jobs")
    assert browser.get("/jobs").status_code == 200

    disabled = client.post(f"/api/admin/users/{user_id}/disable", headers=admin)
    assert disabled.status_code == 200 and disabled.json["disabled"] is True and disabled.json["email"] == email

    # The token in hand stops working at once, for reading and for sending.
    assert me(client, token)["error"]["code"] == "account_disabled"
    assert client.post("/api/users/jobs", json=job_payload("spam"), headers=token).status_code == 401
    # So does the browser session: sign in again, which is refused.
    assert browser.get("/jobs").headers["Location"].startswith("/login")
    posted = browser.client.post(
        "/jobs", data={**page_form("spam"), "csrf_token": csrf}, headers={"HX-Request": "true", "X-CSRFToken": csrf}
    )
    assert posted.status_code == 401 and posted.headers["HX-Redirect"].startswith("/login")
    assert stored_subjects() == []
    # Signing in: the very answer a wrong password gets, on the API and on the page.
    right = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    wrong = client.post("/api/auth/login", json={"email": email, "password": "not-the-password"})
    assert (right.status_code, right.json) == (wrong.status_code, wrong.json) == (401, right.json)
    page_right, page_wrong = browser.login(email), browser.login(email, "not-the-password")
    assert page_right.status_code == page_wrong.status_code == 401
    assert "Wrong email or password." in page_right.get_data(as_text=True)

    enabled = client.post(f"/api/admin/users/{user_id}/enable", headers=admin)
    assert enabled.status_code == 200 and enabled.json["disabled"] is False
    # Back in by signing in again; what was issued before the disable stays dead.
    assert me(client, api.login(email))["email"] == email
    assert me(client, token)["error"]["code"] == "token_revoked"
    assert browser.get("/jobs").status_code == 302
    assert browser.login(email).status_code == 302 and browser.get("/jobs").status_code == 200


def test_disabling_is_for_admins_never_yourself_and_never_the_last_admin(app, client, api):
    from webapp.services.accounts import disabling
    from webapp.services.errors import Conflict

    root = api.admin("root@example.com")
    root_id = me(client, root)["id"]
    user = api.user()
    user_id = me(client, user)["id"]
    for path in (f"/api/admin/users/{root_id}/disable", f"/api/admin/users/{user_id}/enable"):
        assert client.post(path, headers=user).status_code == 403
    assert client.post(f"/api/admin/users/{ZERO_ID}/disable", headers=root).status_code == 404
    assert client.post("/api/admin/users/not-an-id/disable", headers=root).status_code == 404
    yourself = client.post(f"/api/admin/users/{root_id}/disable", headers=root)
    assert yourself.status_code == 409 and "your own account" in yourself.json["error"]["message"]
    with pytest.raises(Conflict, match="The last admin cannot be disabled"):
        disabling.disable_account(root_id)  # say, from a script

    # Two admins disabling each other at the same instant: never no admin left.
    other = api.admin()
    other_id = me(client, other)["id"]
    barrier = threading.Barrier(2)
    answers = {}

    def disable(headers, target):
        barrier.wait()
        answers[target] = app.test_client().post(f"/api/admin/users/{target}/disable", headers=headers).status_code

    threads = [threading.Thread(target=disable, args=args) for args in ((root, other_id), (other, root_id))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    from webapp.services.accounts import users

    assert users.count_admins() >= 1, answers
    assert sorted(answers.values()) in ([200, 409], [409, 409], [200, 401]), answers


def test_the_users_page_disables_and_enables_with_csrf(app, client):
    from webapp.services.accounts import users

    users.create_or_promote_admin("root@example.com", PASSWORD)
    carol = users.register("carol@example.com", PASSWORD)
    admin = PageClient(client)
    admin.login("root@example.com")
    page = admin.get("/admin/users").get_data(as_text=True)
    assert f'id="disable-{carol.id}"' in page
    assert 'id="disable-' + str(users.find_user_by_email("root@example.com").id) not in page  # not yourself

    assert admin.post(f"/admin/users/{carol.id}/disable", {"page": "1"}, htmx=True, token=False).status_code == 400
    assert not users.get_user(carol.id).disabled
    rows = admin.post(f"/admin/users/{carol.id}/disable", {"page": "1"}, htmx=True)
    assert rows.status_code == 200
    html = rows.get_data(as_text=True)
    assert "disabled-tag" in html and f'id="enable-{carol.id}"' in html
    assert users.get_user(carol.id).disabled

    done = admin.post(f"/admin/users/{carol.id}/enable", {"page": "1"})
    assert done.status_code == 302
    assert "carol@example.com is enabled again." in admin.get("/admin/users").get_data(as_text=True)
    assert not users.get_user(carol.id).disabled


def test_a_disabled_owners_emails_wait_and_go_out_late_once_enabled(app, client, api, consumer, smtp):
    from webapp.models import Job
    from webapp.services.delivery import attempts
    from webapp.services.delivery import recovery
    from webapp.services.monitoring import stats
    from webapp.timeutil import utcnow

    admin = api.admin()
    owner = api.user()
    owner_id = me(client, owner)["id"]
    due_at = datetime.now(UTC) + timedelta(seconds=3)
    created = client.post("/api/users/jobs", json=job_payload("held back", due_at.isoformat()), headers=owner).json
    assert client.post(f"/api/admin/users/{owner_id}/disable", headers=admin).status_code == 200

    # Its queued delivery comes due and finds the job held: it stays PENDING, nothing is sent.
    time.sleep(max(0.0, (due_at - datetime.now(UTC)).total_seconds()) + 3)
    job = Job.objects.get(id=created["id"])
    assert (job.status, job.held, job.attempts) == ("PENDING", "owner_disabled", 0)
    assert smtp.messages == []
    assert attempts.claim(job.id, "any-worker", 30)[0] is None
    assert job.id not in [job_id for job_id, _ in recovery.due_unqueued_jobs(grace_seconds=0)]  # nor re-queued
    assert stats.overdue(utcnow(), 0)["count"] == 0  # nor shown as late on the status page: it waits on purpose

    assert client.post(f"/api/admin/users/{owner_id}/enable", headers=admin).status_code == 200
    [message] = smtp.wait_for(1, timeout=20)
    assert message.message_id == created["message_id"]
    time.sleep(0.5)
    job.reload()
    assert (job.status, job.held, job.attempts) == ("COMPLETED", None, 1)
    assert len(smtp.messages) == 1
