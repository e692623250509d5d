"""Every query the app sends while it serves its pages, its API and its sweep is answered through an index.

The requests go through the Flask test client (pages, their polls, the API, /metrics), the sweep and the
consumers' maintenance steps run in this process, all against the suite's FerretDB; pymongo's command
monitoring keeps every command they send (tests/support/commands.py). Each read, count, update and
delete is then explained on FerretDB (tests/support/pushdown.py, plan_problems): the filter must reach
SQLite through an index, exactly, with every field it pins to a value in the index search; a sort must
walk an index in its order (not sort the matches), and a skip, a limit or a count must be SQLite's too. What explain cannot show, whether a count or a group
reads rows or only index entries, the benchmark measures (bench/reads.py). The same
equality-then-sort shapes are what MongoDB answers from the indexes in webapp/models/ (docs/queries.md).
"""

from datetime import timedelta

import pytest
from bson import ObjectId

from tests.support.commands import RECORDER
from tests.support.pages import PASSWORD
from tests.support.pages import PageClient
from tests.support.pushdown import as_explained
from tests.support.pushdown import plan_problems

EXPLAINED = {"find", "aggregate", "count", "update", "delete", "findAndModify"}
# Read whole on purpose: one heartbeat document per consumer process.
WHOLE = [{"find": "worker_beats"}]


@pytest.fixture()
def stored(app, api):
    """Two users with jobs in every status (one RUNNING with a lease that ran out, PENDING ones past their
    expiry), an admin, audit entries."""
    from webapp.models import Job
    from webapp.models import JobStatus
    from webapp.services import audit
    from webapp.services.accounts import users
    from webapp.timeutil import utcnow

    now = utcnow()
    owners = [users.register(f"owner{n}@example.com", PASSWORD) for n in range(2)]
    admin = users.create_or_promote_admin("root@example.com", PASSWORD)
    for n in range(24):
        status = JobStatus.ALL[n % len(JobStatus.ALL)]
        fields = {}
        if status == JobStatus.RUNNING:
            fields = {"lease_token": "t", "lease_owner": "w", "lease_expires_at": now - timedelta(minutes=1)}
        if status == JobStatus.PENDING and n >= 12:
            fields = {"expires_at": now - timedelta(minutes=1), "timezone": "Europe/Paris"}
        Job(
            owner_id=owners[n % 2].id,
            to=["a@example.com"],
            subject=f"job {n}",
            body="b",
            send_at=now,
            next_attempt_at=now - timedelta(hours=n),
            message_id=f"<{ObjectId()}@x>",
            status=status,
            attempts=1,
            attempts_log=[{"outcome": "sent"}],
            created_at=now - timedelta(minutes=n),
            updated_at=now - timedelta(days=4 * n),
            **fields,
        ).save()
    audit.record("sign_in", admin, ip="127.0.0.1")
    return {"owners": owners, "admin": admin, "job": Job.objects(owner_id=owners[0].id).first()}


def serve_everything(app, client, api, stored):
    """What users, admins, Prometheus, the sweep and the consumers' maintenance ask, once each."""
    from tasks.schedules import materialize_due
    from tasks.sweeper import sweep_once
    from webapp.services.delivery import expiry
    from webapp.services.jobs import change_marks
    from webapp.services.monitoring import job_counts
    from webapp.timeutil import utcnow

    owner, job = stored["owners"][0], stored["job"]
    user = PageClient(client)
    user.login(owner.email)
    for path in ("/jobs", "/jobs?status=PENDING", "/jobs?page=2&per_page=5", "/jobs/rows", f"/jobs/{job.id}"):
        assert user.get(path).status_code == 200, path
    assert user.client.get("/jobs/rows", headers={"HX-Request": "true"}).status_code == 200
    form = {"to": "reader@example.com", "subject": "new", "body": "b", "send_at": "", "timezone": "UTC"}
    assert user.post("/jobs", form).status_code == 302  # the pending quota's count, the insert
    assert user.post(f"/jobs/{job.id}/cancel").status_code == 302

    admin = PageClient(app.test_client())
    admin.login(stored["admin"].email)
    for path in (
        "/admin",
        "/admin/jobs",
        "/admin/jobs?status=FAILED",
        f"/admin/jobs?owner={owner.email}",
        "/admin/jobs?overdue=1",
        f"/admin/jobs/{job.id}",
        "/admin/users",
        "/admin/audit",
        f"/admin/audit?actor={stored['admin'].email}&action=sign_in",
        "/admin/jobs/rows?status=RUNNING",
    ):
        assert admin.get(path).status_code == 200, path

    token = api.login(owner.email, PASSWORD)
    root = api.login(stored["admin"].email, PASSWORD)
    for headers, path in (
        (token, "/api/users/jobs"),
        (token, "/api/users/jobs?status=COMPLETED&page=2&per_page=3"),
        (token, f"/api/users/jobs/{job.id}"),
        (root, "/api/admin/jobs"),
        (root, "/api/admin/jobs?status=FAILED"),
        (root, f"/api/admin/jobs?owner={owner.id}"),
        (root, "/api/admin/stats"),
        (root, "/api/admin/users"),
        (root, f"/api/admin/audit?actor={stored['admin'].id}"),
        (root, "/api/admin/audit"),
        (None, "/metrics"),
    ):
        assert client.get(path, headers=headers).status_code == 200, path

    serve_scheduling(app, client, user, admin, token, root, owner, job)

    app.config["RETENTION_DAYS"] = 30  # some of the stored finished jobs are past it
    try:
        sweep_once(app)
    finally:
        app.config["RETENTION_DAYS"] = 90
    # The sweep's expiry takes a turn (once per 30 s across sweepers): its query, whatever the turn.
    expiry.expire_pending(utcnow())
    materialize_due(app, now=utcnow() + timedelta(days=8))  # the beat's step, with a schedule due
    job_counts.recount_if_due(5)
    job_counts.read(5)
    change_marks.FLUSHER.flush()


def serve_scheduling(app, client, user, admin, token, root, owner, job):
    """Issue 8's requests: reschedule, the preview, schedules (create, list, change, pause, delete), the
    admins' schedules and bulk actions (ids, an owner, the overdue backlog), the bulk form."""
    assert client.patch(f"/api/users/jobs/{job.id}", headers=token, json={"subject": "moved"}).status_code in (200, 409)
    assert user.get("/jobs/preview?send_at=2031-01-01T10:00&timezone=UTC").status_code == 200
    weekly = {"to": "reader@example.com", "subject": "Weekly", "body": "b", "cron": "0 9 * * 1", "timezone": "UTC"}
    created = client.post("/api/users/schedules", headers=token, json=weekly)
    assert created.status_code == 201, created.json
    kept = client.post("/api/users/schedules", headers=token, json=weekly).json["id"]  # stays, due for the beat
    schedule_id = created.json["id"]
    for path in ("/api/users/schedules", f"/api/users/schedules/{schedule_id}"):
        assert client.get(path, headers=token).status_code == 200, path
    assert client.get("/api/admin/schedules", headers=root).status_code == 200
    assert user.get("/schedules").status_code == 200 and admin.get("/admin/schedules").status_code == 200
    changed = client.patch(f"/api/users/schedules/{schedule_id}", headers=token, json={"cron": "0 10 * * 1"})
    assert changed.status_code == 200, changed.json
    assert (
        client.patch(f"/api/users/schedules/{schedule_id}", headers=token, json={"status": "paused"}).status_code == 200
    )
    assert client.delete(f"/api/users/schedules/{schedule_id}", headers=token).status_code == 200
    assert client.get(f"/api/users/schedules/{kept}", headers=token).status_code == 200
    pending = [str(j.id) for j in type(job).objects(owner_id=owner.id, status="PENDING")][:2]
    for body in (
        {"action": "cancel", "ids": pending[:1]},
        {"action": "send_now", "filter": {"overdue": True}},
        {"action": "reschedule", "filter": {"owner": owner.email}, "send_at": "2031-01-01T10:00:00Z"},
        {"action": "cancel", "filter": {"status": "PENDING"}},
    ):
        answer = client.post("/api/admin/bulk/jobs", headers=root, json=body)
        assert answer.status_code == 200, (body, answer.json)
    assert admin.post("/admin/jobs/bulk", {"action": "send_now", "scope": "all", "overdue": "1"}).status_code == 302


def test_every_query_the_app_sends_is_answered_through_an_index(app, client, api, stored, database):
    if database is None:
        pytest.skip("TEST_MONGODB_URI: explain's shape is FerretDB's here")
    with RECORDER.recording() as sent:
        serve_everything(app, client, api, stored)
    database_name = app.config["MONGODB_URI"].rsplit("/", 1)[1]
    explained, problems = set(), []
    for command in sent:
        if command.name not in EXPLAINED:
            continue
        for query in as_explained(command.name, command.command):
            key = repr(sorted((k, repr(v)) for k, v in query.items()))
            if key in explained:
                continue
            explained.add(key)
            problems += plan_problems(database.uri, database_name, query, WHOLE, strict=True)
    collections = {command.collection for command in sent if command.name in EXPLAINED}
    # The scenario reached every collection the app reads or writes in a request or the sweep.
    assert {
        "jobs",
        "users",
        "audit_log",
        "job_counts",
        "worker_beats",
        "delivery_stats",
        "controls",
        "sweep_turns",
        "schedules",
    } - collections <= {"sweep_turns"}, collections
    assert len(explained) > 40, len(explained)
    assert not problems, "\n".join(problems)
