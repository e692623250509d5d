"""Abuse limits on an account, tried as an attacker (or a runaway script) would.

The pending quota; an admin disabling an account that holds an old token and an old
browser session, and whose emails must wait; the audit log of every door: who signed in
or failed to, who changed what, from where; and that no password ever reaches it.
Real FerretDB, Redis, Huey consumer and SMTP server; the API and pages through Flask's
test client.
"""

import json
import re
import threading
import time
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from tests.support.pages import PASSWORD
from tests.support.pages import PageClient

ZERO_ID = "000000000000000000000000"


class _Queued(str):
    """Equal to "<n> due jobs queued" for any n: a consumer of another test may have sent the job first."""

    def __eq__(self, other):
        return isinstance(other, str) and re.fullmatch(r"\d+ due jobs queued", other) is not None

    __hash__ = str.__hash__


ANY_QUEUED = _Queued("<n> due jobs queued")


def in_(seconds):
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def job_payload(subject="s", send_at=None):
    return {"to": "reader@example.com", "subject": subject, "body": "b", "send_at": send_at or in_(86400)}


def me(client, headers):
    return client.get("/api/users/me", headers=headers).json


def stored_subjects():
    from webapp.models import Job

    return sorted(job.subject for job in Job.objects)


def page_form(subject):
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    return {"to": "reader@example.com", "subject": subject, "body": "b", "send_at": tomorrow, "timezone": "UTC"}


# --- the pending quota --------------------------------------------------------------------------

def test_one_pending_job_past_the_quota_is_a_429_that_names_it(app, client, api, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_PENDING_JOBS_PER_USER", 3)
    headers = api.user()
    created = [client.post("/api/users/jobs", json=job_payload(f"job {n}", in_(3600 * (n + 1))), headers=headers)
               for n in range(3)]
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
    from webapp.services import accounts

    monkeypatch.setitem(app.config, "MAX_PENDING_JOBS_PER_USER", 1)
    accounts.create_or_promote_admin("root@example.com", PASSWORD)
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
    posted = browser.client.post("/jobs", data={**page_form("spam"), "csrf_token": csrf},
                                 headers={"HX-Request": "true", "X-CSRFToken": csrf})
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
    from webapp.errors import Conflict
    from webapp.services import account_status

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
        account_status.disable_account(root_id)  # say, from a script

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
    from webapp.services import accounts

    assert accounts.count_admins() >= 1, answers
    assert sorted(answers.values()) in ([200, 409], [409, 409], [200, 401]), answers


def test_the_users_page_disables_and_enables_with_csrf(app, client):
    from webapp.services import accounts

    accounts.create_or_promote_admin("root@example.com", PASSWORD)
    carol = accounts.register("carol@example.com", PASSWORD)
    admin = PageClient(client)
    admin.login("root@example.com")
    page = admin.get("/admin/users").get_data(as_text=True)
    assert f'id="disable-{carol.id}"' in page
    assert 'id="disable-' + str(accounts.find_user_by_email("root@example.com").id) not in page  # not yourself

    assert admin.post(f"/admin/users/{carol.id}/disable", {"page": "1"}, htmx=True, token=False).status_code == 400
    assert not accounts.get_user(carol.id).disabled
    rows = admin.post(f"/admin/users/{carol.id}/disable", {"page": "1"}, htmx=True)
    assert rows.status_code == 200
    html = rows.get_data(as_text=True)
    assert "disabled-tag" in html and f'id="enable-{carol.id}"' in html
    assert accounts.get_user(carol.id).disabled

    done = admin.post(f"/admin/users/{carol.id}/enable", {"page": "1"})
    assert done.status_code == 302
    assert "carol@example.com is enabled again." in admin.get("/admin/users").get_data(as_text=True)
    assert not accounts.get_user(carol.id).disabled


def test_a_disabled_owners_emails_wait_and_go_out_late_once_enabled(app, client, api, consumer, smtp):
    from webapp.models import Job
    from webapp.services import attempts
    from webapp.services import recovery

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
    assert attempts.claim_job(job.id, "any-worker", 30) is None
    assert job.id not in [job_id for job_id, _ in recovery.due_unqueued_jobs(grace_seconds=0)]  # nor re-queued

    assert client.post(f"/api/admin/users/{owner_id}/enable", headers=admin).status_code == 200
    [message] = smtp.wait_for(1, timeout=20)
    assert message.message_id == created["message_id"]
    time.sleep(0.5)
    job.reload()
    assert (job.status, job.held, job.attempts) == ("COMPLETED", None, 1)
    assert len(smtp.messages) == 1


# --- the audit log ------------------------------------------------------------------------------

def audit_entries(client, headers, **filters):
    query = "&".join(f"{key}={value}" for key, value in {"per_page": 100, **filters}.items())
    response = client.get(f"/api/admin/audit?{query}", headers=headers)
    assert response.status_code == 200, response.json
    return response.json["items"]


def summary(entries):
    """(action, outcome, actor email, target label or id, detail) of each entry, oldest first."""
    return [(e["action"], e["outcome"], e["actor_email"], e["target_label"] or e["target_id"], e["detail"])
            for e in reversed(entries)]


def test_every_sign_in_sign_up_and_sign_out_is_audited_with_the_email_tried_and_the_address(app, client, api):
    ip = {"REMOTE_ADDR": "192.0.2.7"}
    post = lambda path, body, **kw: client.post(path, json=body, environ_base=ip, **kw)  # noqa: E731
    assert post("/api/auth/register", {"email": "Ada@Example.com", "password": PASSWORD}).status_code == 201
    assert post("/api/auth/register", {"email": "ada@example.com", "password": PASSWORD}).status_code == 409
    token = post("/api/auth/login", {"email": "ada@example.com", "password": PASSWORD}).json["access_token"]
    assert post("/api/auth/login", {"email": "ada@example.com", "password": "guess"}).status_code == 401
    assert post("/api/auth/login", {"email": "nobody@example.com", "password": "guess"}).status_code == 401
    assert post("/api/auth/logout", {}, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    browser = PageClient(app.test_client(), ip="198.51.100.9")
    browser.signup("bob@example.com")
    browser.logout()
    assert browser.login("bob@example.com", "guess").status_code == 401
    assert browser.login("bob@example.com").status_code == 302

    entries = audit_entries(client, api.admin())
    ours = [e for e in entries if e["ip"] in ("192.0.2.7", "198.51.100.9")]  # not the admin's own sign-in
    assert summary(ours) == [
        ("sign_up", "success", "ada@example.com", "ada@example.com", "API"),
        ("sign_up", "failure", "ada@example.com", None, "An account with this email already exists."),
        ("sign_in", "success", "ada@example.com", None, "API: token issued"),
        ("sign_in", "failure", "ada@example.com", None, "API: wrong password"),
        ("sign_in", "failure", "nobody@example.com", None, "API: no account with this email"),
        ("token_revoke", "success", "ada@example.com", summary_token(ours), None),
        ("sign_up", "success", "bob@example.com", "bob@example.com", "page"),
        ("sign_out", "success", "bob@example.com", None, "every browser session ended"),
        ("sign_in", "failure", "bob@example.com", None, "page: wrong password"),
        ("sign_in", "success", "bob@example.com", None, "page: browser session"),
    ]
    assert {e["ip"] for e in ours[:4]} == {"198.51.100.9"} and ours[-1]["ip"] == "192.0.2.7"
    # The account's id is kept with its email, except on the sign-up refused for someone else's address.
    ada = [e for e in ours if e["actor_email"] == "ada@example.com"]
    assert [e["actor_id"] for e in ada if e["action"] == "sign_up" and e["outcome"] == "failure"] == [None]
    assert {e["actor_id"] for e in ada if e["outcome"] == "success" or e["action"] == "sign_in"} == {
        me(client, api.login("ada@example.com"))["id"]}
    assert all(e["at"].endswith("Z") for e in ours)


def summary_token(entries):
    [revoked] = [e for e in entries if e["action"] == "token_revoke"]
    assert revoked["target_type"] == "token" and len(revoked["target_id"]) >= 16
    return revoked["target_id"]


def test_admin_actions_are_audited_with_actor_target_and_outcome(app, client, api):
    from webapp.models import Job

    admin = api.admin("root@example.com")
    alice = api.user("alice@example.com")
    alice_id = me(client, alice)["id"]
    failed = client.post("/api/users/jobs", json=job_payload("failed"), headers=alice).json
    doubtful = client.post("/api/users/jobs", json=job_payload("doubtful"), headers=alice).json
    pending = client.post("/api/users/jobs", json=job_payload("tomorrow"), headers=alice).json
    Job.objects(id=failed["id"]).update_one(set__status="FAILED")
    Job.objects(id=doubtful["id"]).update_one(set__status="IN_DOUBT")

    steps = [
        ("patch", f"/api/admin/users/{alice_id}/role", {"role": "admin"}, 200),
        ("patch", f"/api/admin/users/{alice_id}/role", {"role": "user"}, 200),
        ("patch", f"/api/admin/users/{me(client, admin)['id']}/role", {"role": "user"}, 409),
        ("post", f"/api/admin/users/{alice_id}/disable", None, 200),
        ("post", f"/api/admin/users/{alice_id}/enable", None, 200),
        ("post", f"/api/admin/jobs/{failed['id']}/retry", None, 200),
        ("post", f"/api/admin/jobs/{pending['id']}/retry", None, 409),
        ("post", f"/api/admin/jobs/{doubtful['id']}/close", None, 200),
        ("post", f"/api/admin/jobs/{ZERO_ID}/close", None, 404),
        ("post", "/api/admin/delivery/pause", None, 200),
        ("post", "/api/admin/delivery/resume", None, 200),
    ]
    for method, path, body, status in steps:
        assert getattr(client, method)(path, json=body, headers=admin).status_code == status, path

    entries = [e for e in audit_entries(client, admin) if e["action"] != "sign_in" and e["action"] != "sign_up"]
    assert summary(entries) == [
        ("role_change", "success", "root@example.com", "alice@example.com", "role set to admin"),
        ("role_change", "success", "root@example.com", "alice@example.com", "role set to user"),
        ("role_change", "failure", "root@example.com", me(client, admin)["id"],
         "The last admin cannot be demoted; promote someone else first."),
        ("account_disable", "success", "root@example.com", "alice@example.com", None),
        ("account_enable", "success", "root@example.com", "alice@example.com", None),
        ("job_requeue", "success", "root@example.com", failed["id"], None),
        ("job_requeue", "failure", "root@example.com", pending["id"],
         "Only FAILED or IN_DOUBT jobs can be requeued; this one is PENDING."),
        ("job_close", "success", "root@example.com", doubtful["id"], None),
        ("job_close", "failure", "root@example.com", ZERO_ID, "No such job."),
        ("delivery_pause", "success", "root@example.com", "delivery", None),
        ("delivery_resume", "success", "root@example.com", "delivery", ANY_QUEUED),
    ]
    assert all(e["ip"] == "127.0.0.1" and e["actor_id"] == me(client, admin)["id"] for e in entries)


def test_the_pages_admin_actions_are_audited_too(app, client):
    from webapp.models import AuditEntry
    from webapp.models import Job
    from webapp.services import accounts

    accounts.create_or_promote_admin("root@example.com", PASSWORD)
    carol = accounts.register("carol@example.com", PASSWORD)
    admin = PageClient(client, ip="203.0.113.5")
    admin.login("root@example.com")
    user = PageClient(app.test_client())
    user.login("carol@example.com")
    user.post("/jobs", page_form("to requeue"))
    job = Job.objects.get()
    Job.objects(id=job.id).update_one(set__status="FAILED")

    admin.post(f"/admin/users/{carol.id}/role", {"role": "admin"}, htmx=True)
    admin.post(f"/admin/users/{carol.id}/disable", {}, htmx=True)
    admin.post(f"/admin/users/{carol.id}/enable", {}, htmx=True)
    admin.post(f"/admin/jobs/{job.id}/requeue", htmx=True)
    admin.post(f"/admin/jobs/{job.id}/close", htmx=True)
    actions = [(e.action, e.outcome, e.ip) for e in AuditEntry.objects(actor_email="root@example.com").order_by("at")
               if e.action != "sign_in"]
    assert actions == [("role_change", "success", "203.0.113.5"), ("account_disable", "success", "203.0.113.5"),
                       ("account_enable", "success", "203.0.113.5"), ("job_requeue", "success", "203.0.113.5"),
                       ("job_close", "failure", "203.0.113.5")]


def test_the_audit_log_filters_by_actor_and_action_newest_first_page_by_page(app, client, api):
    admin = api.admin("root@example.com")
    for n in range(3):
        client.post("/api/auth/login", json={"email": f"guess-{n}@example.com", "password": "x"})
    alice = api.user("alice@example.com")
    alice_id = me(client, alice)["id"]

    failures = audit_entries(client, admin, action="sign_in")
    assert [e["actor_email"] for e in failures[:4]] == ["alice@example.com", "guess-2@example.com",
                                                       "guess-1@example.com", "guess-0@example.com"]
    assert [e["action"] for e in audit_entries(client, admin, actor="Alice@Example.com")] == ["sign_in", "sign_up"]
    assert [e["action"] for e in audit_entries(client, admin, actor=alice_id)] == ["sign_in", "sign_up"]
    assert audit_entries(client, admin, actor="not-an-id") == []
    first = client.get("/api/admin/audit?per_page=2&page=1", headers=admin).json
    second = client.get("/api/admin/audit?per_page=2&page=2", headers=admin).json
    assert first["total"] == second["total"] == 6 and len(first["items"]) == 2
    assert first["items"][-1]["at"] >= second["items"][0]["at"]
    assert not {e["id"] for e in first["items"]} & {e["id"] for e in second["items"]}

    bad = client.get("/api/admin/audit?action=drop_tables", headers=admin)
    assert bad.status_code == 422 and bad.json["error"]["fields"]["action"].startswith("must be one of")
    assert client.get("/api/admin/audit", headers=alice).status_code == 403
    assert client.get("/api/admin/audit").status_code == 401


def test_the_audit_page_filters_and_pages_with_htmx_for_admins_only(app, client):
    from webapp.services import accounts

    accounts.create_or_promote_admin("root@example.com", PASSWORD)
    accounts.register("carol@example.com", PASSWORD)
    admin = PageClient(client)
    admin.login("root@example.com")
    carol = PageClient(app.test_client())
    carol.login("carol@example.com", "wrong-password")
    carol.login("carol@example.com")

    page = admin.get("/admin/audit").get_data(as_text=True)
    assert 'href="/admin/audit"' in page and "Audit log" in page and "carol@example.com" in page
    fragment = admin.get("/admin/audit?actor=carol@example.com&action=sign_in", htmx=True)
    html = fragment.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="audit-results">') and "<html" not in html
    assert html.count('<tr id="audit-') == 2 and "page: wrong password" in html and "root@example.com" not in html
    paged = admin.get("/admin/audit?per_page=1&page=2", htmx=True).get_data(as_text=True)
    assert paged.count('<tr id="audit-') == 1 and 'rel="prev"' in paged and 'rel="next"' in paged
    assert admin.get("/admin/audit?action=nope").status_code == 422
    assert carol.get("/admin/audit").status_code == 403


def test_no_password_ever_reaches_the_audit_log(app, client, api):
    from webapp.models import AuditEntry

    secrets_used = [f"Sekret-{uuid.uuid4().hex[:12]}" for _ in range(6)]
    signup_pw, wrong_pw, page_pw, page_wrong_pw, taken_pw, admin_pw = secrets_used
    client.post("/api/auth/register", json={"email": "ada@example.com", "password": signup_pw})
    client.post("/api/auth/register", json={"email": "ada@example.com", "password": taken_pw})
    client.post("/api/auth/login", json={"email": "ada@example.com", "password": signup_pw})
    client.post("/api/auth/login", json={"email": "ada@example.com", "password": wrong_pw})
    browser = PageClient(app.test_client())
    browser.signup("bob@example.com", page_pw)
    browser.logout()
    browser.login("bob@example.com", page_wrong_pw)
    browser.login("bob@example.com", page_pw)
    from webapp.services import accounts

    accounts.create_or_promote_admin("root@example.com", admin_pw)
    root = api.login("root@example.com", admin_pw)
    bob = accounts.find_user_by_email("bob@example.com")
    client.post(f"/api/admin/users/{bob.id}/disable", headers=root)
    client.post("/api/auth/login", json={"email": "bob@example.com", "password": page_pw})

    stored = json.dumps(list(AuditEntry._get_collection().find()), default=str)
    assert AuditEntry.objects.count() >= 10
    for secret in secrets_used:
        assert secret not in stored


def test_the_sweep_keeps_audit_entries_for_the_retention_period_only(app):
    from webapp.models import AuditEntry
    from webapp.services import audit
    from webapp.timeutil import utcnow

    audit.record("sign_in", "old@example.com", outcome="failure", detail="wrong password")
    AuditEntry.objects.update(set__at=utcnow() - timedelta(days=400))
    audit.record("sign_in", "new@example.com", outcome="failure", detail="wrong password")

    assert audit.purge_older_than(0) == 0  # 0 keeps everything
    assert audit.purge_older_than(365) == 1
    assert [entry.actor_email for entry in AuditEntry.objects] == ["new@example.com"]
