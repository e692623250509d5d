"""The audit log, read as an admin investigating an incident would.

Every door's event (who signed in or failed to, with the email typed; who signed up,
signed out, revoked a token, changed a role, disabled, requeued, closed, paused), with
actor, target, client address and outcome; the API and the page, filtered and paged;
retention; and that no password ever reaches it. Real FerretDB and Redis; the API and
pages through Flask's test client.
"""

import json
import re
import uuid
from datetime import timedelta

from tests.support.pages import PASSWORD
from tests.support.pages import PageClient
from tests.support.security import ZERO_ID
from tests.support.security import job_payload
from tests.support.security import me
from tests.support.security import page_form


class _Queued(str):
    """Equal to "<n> due jobs queued" for any n: a consumer of another test may have sent the job first."""

    def __eq__(self, other):
        return isinstance(other, str) and re.fullmatch(r"\d+ due jobs queued", other) is not None

    __hash__ = str.__hash__


ANY_QUEUED = _Queued("<n> due jobs queued")


def audit_entries(client, headers, **filters):
    query = "&".join(f"{key}={value}" for key, value in {"per_page": 100, **filters}.items())
    response = client.get(f"/api/admin/audit?{query}", headers=headers)
    assert response.status_code == 200, response.json
    return response.json["items"]


def summary(entries):
    """(action, outcome, actor email, target label or id, detail) of each entry, oldest first."""
    return [
        (e["action"], e["outcome"], e["actor_email"], e["target_label"] or e["target_id"], e["detail"])
        for e in reversed(entries)
    ]


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
        me(client, api.login("ada@example.com"))["id"]
    }
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
        (
            "role_change",
            "failure",
            "root@example.com",
            me(client, admin)["id"],
            "The last admin cannot be demoted; promote someone else first.",
        ),
        ("account_disable", "success", "root@example.com", "alice@example.com", None),
        ("account_enable", "success", "root@example.com", "alice@example.com", None),
        ("job_requeue", "success", "root@example.com", failed["id"], None),
        (
            "job_requeue",
            "failure",
            "root@example.com",
            pending["id"],
            "Only FAILED or IN_DOUBT jobs can be requeued; this one is PENDING.",
        ),
        ("job_close", "success", "root@example.com", doubtful["id"], None),
        ("job_close", "failure", "root@example.com", ZERO_ID, "No such job."),
        ("delivery_pause", "success", "root@example.com", "delivery", None),
        ("delivery_resume", "success", "root@example.com", "delivery", ANY_QUEUED),
    ]
    assert all(e["ip"] == "127.0.0.1" and e["actor_id"] == me(client, admin)["id"] for e in entries)


def test_the_pages_admin_actions_are_audited_too(app, client):
    from webapp.models import AuditEntry
    from webapp.models import Job
    from webapp.services.accounts import users

    users.create_or_promote_admin("root@example.com", PASSWORD)
    carol = users.register("carol@example.com", PASSWORD)
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
    actions = [
        (e.action, e.outcome, e.ip)
        for e in AuditEntry.objects(actor_email="root@example.com").order_by("at")
        if e.action != "sign_in"
    ]
    assert actions == [
        ("role_change", "success", "203.0.113.5"),
        ("account_disable", "success", "203.0.113.5"),
        ("account_enable", "success", "203.0.113.5"),
        ("job_requeue", "success", "203.0.113.5"),
        ("job_close", "failure", "203.0.113.5"),
    ]


def test_the_audit_log_filters_by_actor_and_action_newest_first_page_by_page(app, client, api):
    admin = api.admin("root@example.com")
    for n in range(3):
        client.post("/api/auth/login", json={"email": f"guess-{n}@example.com", "password": "x"})
    alice = api.user("alice@example.com")
    alice_id = me(client, alice)["id"]

    failures = audit_entries(client, admin, action="sign_in")
    assert [e["actor_email"] for e in failures[:4]] == [
        "alice@example.com",
        "guess-2@example.com",
        "guess-1@example.com",
        "guess-0@example.com",
    ]
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
    from webapp.services.accounts import users

    users.create_or_promote_admin("root@example.com", PASSWORD)
    users.register("carol@example.com", PASSWORD)
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
    from webapp.services.accounts import users

    users.create_or_promote_admin("root@example.com", admin_pw)
    root = api.login("root@example.com", admin_pw)
    bob = users.find_user_by_email("bob@example.com")
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
