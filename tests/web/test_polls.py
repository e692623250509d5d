"""The live tables' polls: an unchanged one is a 304 from one database round trip; every change shows.

Real FerretDB, real requests through the Flask test client; the database commands a request sends are
seen by pymongo's command monitoring (tests/support/commands.py), counted in the request's own thread.
The delivery case runs a real Huey consumer and SMTP server: the consumer is another process, so its
change marks reach the table only through the database.
"""

import re
import time
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta

from tests.support.commands import RECORDER
from tests.support.pages import PASSWORD
from tests.support.pages import PageClient
from tests.support.pages import make_admin
from tests.support.waiting import wait_for_status

YEAR = datetime.now(UTC).year + 2
ETAG = re.compile(r"data-etag='(\"[^\"]+\")'")


def schedule(pages, subject, send_at=f"{YEAR}-01-01T10:00"):
    form = {
        "to": "reader@example.com",
        "subject": subject,
        "body": "Body",
        "send_at": send_at,
        "timezone": "Europe/Paris",
    }
    assert pages.post("/jobs", form).status_code == 302


def page_etag(pages, path):
    """The ETag the page's polling element was rendered with, as its script sends it back."""
    return ETAG.search(pages.get(path).get_data(as_text=True)).group(1)


def poll(pages, path, etag):
    """What the page's script sends every 2 s: HX-Request and If-None-Match."""
    return pages.client.get(path, headers={"HX-Request": "true", "If-None-Match": etag})


def flush_marks():
    """Write this process's pending change marks now (the flusher thread would, within a moment)."""
    from webapp.services.jobs import change_marks

    change_marks.FLUSHER.flush()


def commands_of(pages, path, etag):
    """The poll's answer and the database commands its request sent, as (command, collection)."""
    with RECORDER.recording() as sent:
        answer = poll(pages, path, etag)
    return answer, [(c.name, c.collection) for c in sent.in_this_thread()]


def test_an_unchanged_poll_is_a_304_from_one_round_trip_the_session_account(app, client, pages):
    pages.signup()
    schedule(pages, "first")
    schedule(pages, "second")
    flush_marks()
    from webapp.models import Job

    job = Job.objects.first()
    for path, rows in (
        ("/jobs", "/jobs/rows"),
        ("/jobs?status=PENDING", "/jobs/rows?status=PENDING"),
        (f"/jobs/{job.id}", f"/jobs/{job.id}"),
    ):
        etag = page_etag(pages, path)
        answer, sent = commands_of(pages, rows, etag)
        assert answer.status_code == 304 and answer.data == b"", path
        assert answer.headers["ETag"] == etag  # the page and its poll agree
        assert sent == [("find", "users")], (path, sent)

    admin = PageClient(app.test_client())
    make_admin(f"admin-{uuid.uuid4().hex[:8]}@example.com", admin)
    for path, rows in (
        ("/admin/jobs", "/admin/jobs/rows"),
        ("/admin/jobs?status=PENDING", "/admin/jobs/rows?status=PENDING"),
        (f"/admin/jobs/{job.id}", f"/admin/jobs/{job.id}"),
    ):
        etag = page_etag(admin, path)
        answer, sent = commands_of(admin, rows, etag)
        assert answer.status_code == 304, path
        assert sent == [("find", "users")], (path, sent)


def test_a_changed_table_answers_its_poll_with_the_change(app, client, pages, api):
    email = pages.signup()
    schedule(pages, "to cancel")
    flush_marks()
    etag = page_etag(pages, "/jobs")
    from webapp.models import Job

    job = Job.objects.get(subject="to cancel")
    # cancel, from the table
    assert pages.post(f"/jobs/{job.id}/cancel", htmx=True).status_code == 200
    changed = poll(pages, "/jobs/rows", etag)
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert "CANCELLED" in changed.get_data(as_text=True)
    etag = changed.headers["ETag"]
    assert poll(pages, "/jobs/rows", etag).status_code == 304

    # a job created through the API (its mark moves a moment later, off the request's round trips)
    headers = api.login(email, PASSWORD)
    created = client.post(
        "/api/users/jobs",
        headers=headers,
        json={"to": "reader@example.com", "subject": "from the API", "body": "b", "send_at": f"{YEAR}-03-01T10:00:00Z"},
    )
    assert created.status_code == 201
    answer = changed_poll(pages, "/jobs/rows", etag)
    assert answer.status_code == 200 and "from the API" in answer.get_data(as_text=True)
    etag = answer.headers["ETag"]

    # requeued by an admin: the owner's table and the admin's both change
    admin = PageClient(app.test_client())
    make_admin(f"admin-{uuid.uuid4().hex[:8]}@example.com", admin)
    admin_etag = page_etag(admin, "/admin/jobs")
    # As a worker giving up leaves it: FAILED, and its marks moved on (attempts.mark_failed does both).
    Job.objects(id=job.id).update_one(set__status="FAILED")
    from webapp.services.jobs import change_marks

    change_marks.bump([job.owner_id])
    admin_etag = poll(admin, "/admin/jobs/rows", admin_etag).headers["ETag"]
    etag = poll(pages, "/jobs/rows", etag).headers["ETag"]
    assert admin.post(f"/admin/jobs/{job.id}/requeue", htmx=True).status_code == 200
    requeued = poll(pages, "/jobs/rows", etag)
    assert requeued.status_code == 200 and "PENDING" in requeued.get_data(as_text=True)
    assert poll(admin, "/admin/jobs/rows", admin_etag).status_code == 200


def row_status(response):
    """The status badge of the (only) job row in a table fragment."""
    rows = re.findall(
        r'<tr id="job-[0-9a-f]+">.*?<span class="badge badge-\w+">(\w+)</span>', response.get_data(as_text=True), re.S
    )
    assert len(rows) == 1, rows
    return rows[0]


def changed_poll(pages, path, etag, timeout=5):
    """Poll with `etag` until the answer is not a 304 (the mark moved), as the page would every 2 s."""
    deadline = time.monotonic() + timeout
    while (answer := poll(pages, path, etag)).status_code == 304 and time.monotonic() < deadline:
        time.sleep(0.1)
    return answer


def test_each_write_of_a_delivery_by_a_consumer_changes_the_tables_etag(app, client, pages, api, consumer, smtp):
    email = pages.signup()
    smtp.stall_data(2.0)  # the job stays RUNNING a while
    send_at = datetime.now(UTC) + timedelta(seconds=2)
    created = client.post(
        "/api/users/jobs",
        headers=api.login(email, PASSWORD),
        json={
            "to": "reader@example.com",
            "subject": "delivered",
            "body": "b",
            "send_at": send_at.isoformat().replace("+00:00", "Z"),
        },
    )
    assert created.status_code == 201
    flush_marks()
    etag = page_etag(pages, "/jobs")
    assert poll(pages, "/jobs/rows", etag).status_code == 304

    # The claim (in the consumer's process) moves the mark: the table shows RUNNING.
    wait_for_status(created.json["id"], "RUNNING")
    running = changed_poll(pages, "/jobs/rows", etag)
    # The row's own badge (the status counts name every status, so the page always holds the word).
    assert running.status_code == 200 and row_status(running) == "RUNNING", "the claim never reached the mark"
    # Then the 250: each ETag is moments old, so only a moved mark makes the poll look at the table again.
    wait_for_status(created.json["id"], "COMPLETED")
    done = changed_poll(pages, "/jobs/rows", running.headers["ETag"])
    assert done.status_code == 200, "the consumer's COMPLETED never reached the table's mark"
    assert row_status(done) == "COMPLETED"


def test_a_job_recovered_from_a_dead_worker_shows_in_its_owners_open_table(app, pages):
    from webapp.models import User
    from webapp.services.delivery import attempts
    from webapp.services.delivery import recovery
    from webapp.services.delivery.rules import DeliverySettings
    from webapp.services.jobs import actions
    from webapp.services.validation import JobInput
    from webapp.services.validation import parse

    email = pages.signup()
    owner = User.objects.get(email=email).id
    job = actions.create_job(
        owner,
        parse(JobInput, {"to": "reader@example.com", "subject": "orphaned", "body": "b"}),
        "scheduler@mailjobs.test",
        5,
    )
    claimed = attempts.claim(job.id, "a-worker-about-to-die", 30)[0]
    flush_marks()
    etag = page_etag(pages, "/jobs")
    assert poll(pages, "/jobs/rows", etag).status_code == 304

    # The worker died: its lease runs out and recovery (a consumer's beat, or the sweep) gives the job back.
    later = claimed["lease_expires_at"] + timedelta(seconds=1)
    assert recovery.recover_expired_leases(DeliverySettings(), now=later) == [(job.id, "PENDING")]
    flush_marks()
    back = poll(pages, "/jobs/rows", etag)
    assert back.status_code == 200 and row_status(back) == "PENDING"


def test_sign_out_and_disable_refuse_the_poll_instead_of_a_304(app, client, pages):
    email = pages.signup()
    schedule(pages, "mine")
    flush_marks()
    etag = page_etag(pages, "/jobs")
    kept = app.test_client()  # a copy of the session cookie, kept from before the sign-out
    kept.set_cookie("session", client.get_cookie("session").value)
    assert poll(PageClient(kept), "/jobs/rows", etag).status_code == 304

    pages.logout()
    refused = poll(PageClient(kept), "/jobs/rows", etag)
    assert refused.status_code == 401 and refused.headers["HX-Redirect"].startswith("/login")

    assert pages.login(email).status_code == 302
    etag = page_etag(pages, "/jobs")
    assert poll(pages, "/jobs/rows", etag).status_code == 304
    from webapp.services.accounts import disabling
    from webapp.services.accounts import users

    disabling.disable_account(users.find_user_by_email(email).id)
    assert poll(pages, "/jobs/rows", etag).status_code == 401

    admin = PageClient(app.test_client())
    admin_email = make_admin(f"admin-{uuid.uuid4().hex[:8]}@example.com", admin).email
    admin_etag = page_etag(admin, "/admin/jobs")
    assert poll(admin, "/admin/jobs/rows", admin_etag).status_code == 304
    users.create_or_promote_admin("other-admin@example.com", PASSWORD)
    users.set_role(users.find_user_by_email(admin_email).id, "user")
    assert poll(admin, "/admin/jobs/rows", admin_etag).status_code == 403


def _reissued(etag, seconds_ago):
    """The same ETag as if it had been issued `seconds_ago` (its middle part)."""
    mark, _, content = etag.strip('"').split(".")
    return f'"{mark}.{int(time.time() - seconds_ago):x}.{content}"'


def test_a_change_whose_mark_was_lost_shows_once_the_etag_is_due_for_a_look(app, client, pages):
    from webapp.web.polling import REVALIDATE_SECONDS

    pages.signup()
    schedule(pages, "first")
    flush_marks()
    etag = page_etag(pages, "/jobs")
    # Unchanged, and due for a look at the table: still a 304, with a fresh ETag the page keeps.
    due = _reissued(etag, REVALIDATE_SECONDS + 1)
    looked = poll(pages, "/jobs/rows", due)
    assert looked.status_code == 304 and looked.headers["ETag"] != due
    assert looked.headers["ETag"].split(".")[2] == etag.split(".")[2]  # same content, issued now

    from webapp.models import Job

    # A write whose mark never moved (a consumer killed before it flushed its notes).
    Job.objects(subject="first").update_one(set__status="FAILED", set__last_error="550 lost mark")
    assert poll(pages, "/jobs/rows", etag).status_code == 304  # trusted on its mark, for a while
    later = poll(pages, "/jobs/rows", _reissued(etag, REVALIDATE_SECONDS + 1))
    assert later.status_code == 200 and "550 lost mark" in later.get_data(as_text=True)


def test_the_overdue_backlog_changes_with_time_so_its_poll_looks_at_the_table(app, client):
    from bson import ObjectId

    from webapp.models import Job

    admin = PageClient(client)
    make_admin(f"admin-{uuid.uuid4().hex[:8]}@example.com", admin)
    etag = page_etag(admin, "/admin/jobs?overdue=1")
    assert poll(admin, "/admin/jobs/rows?overdue=1", etag).status_code == 304
    # Stored without moving any mark: to the admin's mark nothing happened, as when a PENDING job
    # simply waits past OVERDUE_SECONDS.
    late = datetime.now(UTC) - timedelta(hours=1)
    Job(
        owner_id=ObjectId(),
        to=["a@example.com"],
        subject="late one",
        body="b",
        send_at=late,
        next_attempt_at=late,
        message_id="<late@x>",
    ).save()
    answer = poll(admin, "/admin/jobs/rows?overdue=1", etag)
    assert answer.status_code == 200 and "late one" in answer.get_data(as_text=True)


def job_row(response, job_id):
    """The row of one job in a table fragment (its HTML), or None if the table does not show it."""
    found = re.search(rf'<tr id="job-{job_id}">.*?</tr>', response.get_data(as_text=True), re.S)
    return found.group(0) if found else None


def badge(row):
    return re.search(r'<span class="badge badge-\w+">(\w+)</span>', row).group(1)


class Watcher:
    """An open table (a user's or the admin's), polled as its page would be, that must see each change."""

    def __init__(self, pages, page, rows):
        self.pages, self.rows = pages, rows
        flush_marks()  # anything noted before is written: what the next poll sees is the change under test
        self.etag = page_etag(pages, page)
        assert poll(pages, rows, self.etag).status_code == 304

    def changed(self, what):
        """Poll once (no wait, no flush: a mark moved at once or not at all); the new fragment."""
        answer = poll(self.pages, self.rows, self.etag)
        assert answer.status_code == 200, f"{what}: the poll was a 304, the change was hidden"
        self.etag = answer.headers["ETag"]
        return answer


def test_every_change_scheduling_makes_moves_the_etag(app, client, pages, api):
    """Reschedule, the admins' bulk send-now, reschedule and cancel, expiry (the sweep's and the
    claim's), a wait for the mail server, a schedule's occurrences (made on create and by the
    maintenance beat, cancelled by a pause): each shows in the open tables at the next poll."""
    from bson import ObjectId

    from tasks.schedules import materialize_due
    from webapp.models import Job
    from webapp.models import User
    from webapp.services.delivery import attempts
    from webapp.services.delivery import expiry
    from webapp.services.delivery import rules
    from webapp.services.delivery.rules import DeliverySettings
    from webapp.services.jobs import actions
    from webapp.services.validation import JobInput
    from webapp.services.validation import parse
    from webapp.timeutil import utcnow

    email = pages.signup()
    owner = User.objects.get(email=email)
    headers = api.login(email, PASSWORD)
    admin = PageClient(app.test_client())
    admin_email = make_admin(f"admin-{uuid.uuid4().hex[:8]}@example.com", admin).email
    root = api.login(admin_email, PASSWORD)

    def create(subject, **fields):
        response = client.post(
            "/api/users/jobs",
            headers=headers,
            json={"to": "reader@example.com", "subject": subject, "body": "b", **fields},
        )
        assert response.status_code == 201, response.json
        return response.json["id"]

    def stored(subject):
        job = actions.create_job(
            owner.id,
            parse(JobInput, {"to": "reader@example.com", "subject": subject, "body": "b"}),
            "scheduler@mailjobs.test",
            5,
        )
        return str(job.id)

    job = create("moved about", send_at=f"{YEAR}-03-01T10:00:00Z")
    mine = Watcher(pages, "/jobs", "/jobs/rows")
    everyone = Watcher(admin, "/admin/jobs", "/admin/jobs/rows")

    # The owner reschedules it (PATCH): the row shows the new time.
    changed = client.patch(f"/api/users/jobs/{job}", headers=headers, json={"send_at": f"{YEAR}-04-01T10:00:00Z"})
    assert changed.status_code == 200, changed.json
    assert f'datetime="{YEAR}-04-01T10:00' in job_row(mine.changed("reschedule"), job)
    assert everyone.changed("reschedule").status_code == 200

    # The admin's bulk actions: reschedule (by filter), cancel, send now.
    bulk = client.post(
        "/api/admin/bulk/jobs",
        headers=root,
        json={"action": "reschedule", "filter": {"owner": email}, "send_at": f"{YEAR}-05-01T10:00:00Z"},
    )
    assert bulk.status_code == 200 and bulk.json["affected"] == 1, bulk.json
    assert f'goes out <time datetime="{YEAR}-05-01T10:00' in job_row(mine.changed("bulk reschedule"), job)
    everyone.changed("bulk reschedule")
    bulk = client.post("/api/admin/bulk/jobs", headers=root, json={"action": "cancel", "ids": [job]})
    assert bulk.status_code == 200 and bulk.json["affected"] == 1, bulk.json
    assert badge(job_row(mine.changed("bulk cancel"), job)) == "CANCELLED"
    assert badge(job_row(everyone.changed("bulk cancel"), job)) == "CANCELLED"
    # Sent now: queued at once, so a consumer another test left running may take it: the row shows
    # it going out now, or already RUNNING or sent; either way not as it was.
    soon = create("sent now", send_at=f"{YEAR}-03-01T10:00:00Z")
    mine = Watcher(pages, "/jobs", "/jobs/rows")
    before = job_row(poll(pages, "/jobs/rows", '"none"'), soon)
    bulk = client.post("/api/admin/bulk/jobs", headers=root, json={"action": "send_now", "ids": [soon]})
    assert bulk.status_code == 200 and bulk.json["affected"] == 1, bulk.json
    assert job_row(mine.changed("bulk send now"), soon) != before

    # Expiry in the sweep: a PENDING job past its expires_at is FAILED.
    late = create("expires waiting", send_at=f"{YEAR}-03-01T10:00:00Z", expires_at=f"{YEAR}-03-01T12:00:00Z")
    mine = Watcher(pages, "/jobs", "/jobs/rows")
    assert expiry.expire_pending(datetime(YEAR, 3, 2, tzinfo=UTC)) == 1
    row = job_row(mine.changed("expiry in the sweep"), late)
    assert badge(row) == "FAILED" and "expired" in row

    # Expiry after the claim (the consumer's writes: their marks are written by its flusher). Stored
    # through the service, not the API: not queued, so only this test claims it.
    claimed_late = stored("expires when claimed")
    Job.objects(id=claimed_late).update_one(set__expires_at=utcnow() - timedelta(seconds=1))
    mine = Watcher(pages, "/jobs", "/jobs/rows")

    def never_sent(*_):
        raise AssertionError("an expired job was sent")

    assert rules.deliver(ObjectId(claimed_late), "w1", DeliverySettings(), never_sent).outcome == "failed"
    flush_marks()
    row = job_row(mine.changed("expiry after the claim"), claimed_late)
    assert badge(row) == "FAILED" and "expired" in row

    # A wait for the mail server (connection refused): RUNNING, then PENDING again with the reason.
    waiting = stored("waits for the server")
    claimed = attempts.claim(ObjectId(waiting), "w1", 30)[0]
    mine = Watcher(pages, "/jobs", "/jobs/rows")
    assert attempts.mark_waiting(claimed, "connection refused by the mail server", utcnow() + timedelta(minutes=1))
    flush_marks()
    row = job_row(mine.changed("mark_waiting"), waiting)
    assert badge(row) == "PENDING" and "connection refused" in row

    # A schedule: its next occurrence is made on create, the one after by the maintenance beat,
    # and pausing it cancels both.
    made = client.post(
        "/api/users/schedules",
        headers=headers,
        json={"to": "reader@example.com", "subject": "Weekly", "body": "b", "cron": "0 9 * * 1", "timezone": "UTC"},
    )
    assert made.status_code == 201, made.json
    first = Job.objects.get(schedule_id=ObjectId(made.json["id"]))
    assert job_row(mine.changed("occurrence made on create"), first.id) is not None
    mine = Watcher(pages, "/jobs", "/jobs/rows")
    assert materialize_due(app, now=first.occurrence_at.replace(tzinfo=UTC) + timedelta(minutes=1)) == 1
    second = Job.objects(schedule_id=first.schedule_id, id__ne=first.id).get()
    assert job_row(mine.changed("occurrence made by the beat"), second.id) is not None
    paused = client.patch(f"/api/users/schedules/{made.json['id']}", headers=headers, json={"status": "paused"})
    assert paused.status_code == 200, paused.json
    answer = mine.changed("pause cancels the occurrences")
    assert badge(job_row(answer, first.id)) == badge(job_row(answer, second.id)) == "CANCELLED"
