"""The status page's figures with real consumers: heartbeats, stats, pause and resume, health, 403s.

Consumers here beat every 0.5 s (HEARTBEAT_SECONDS) so that "dead after three
missed beats" takes 1.5 s. The suite's shared consumer is stopped for this
module: it would beat, sweep and deliver alongside ours.
"""

import os
import re
import time
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from types import SimpleNamespace

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from bson import ObjectId

from tests.support.ferretdb import free_port
from tests.support.pages import PageClient
from tests.support.status import FAST_BEAT
from tests.support.status import Consumers
from tests.support.status import clear_figures
from tests.support.status import create_job
from tests.support.waiting import iso
from tests.support.waiting import wait_until

pytestmark = pytest.mark.usefixtures("shared_consumer_stopped")


@pytest.fixture(autouse=True)
def delivery_not_paused(app):
    """Each test starts and ends with delivery running: a pause left behind would stop the whole suite."""
    from webapp.models import DeliveryControl

    DeliveryControl._get_collection().delete_many({})
    yield
    DeliveryControl._get_collection().delete_many({})


@pytest.fixture()
def consumers(app, tmp_path):
    """Consumers started by the test (none at first), on an empty queue, with no heartbeats recorded."""
    from tasks.queue import huey
    from webapp.models import WorkerBeat

    WorkerBeat._get_collection().delete_many({})
    huey.storage.flush_queue()
    huey.storage.flush_schedule()
    fleet = Consumers(dict(os.environ), tmp_path)  # conftest put the test environment there
    yield fleet
    fleet.stop_all()


@pytest.fixture()
def admin(api):
    return api.admin()


def stats(client, admin):
    response = client.get("/api/admin/stats", headers=admin)
    assert response.status_code == 200, response.json
    return response.json


def worker_of(client, admin, consumer):
    """The stats' record of this consumer process (None if absent)."""
    pid = consumer.process.pid
    return next((w for w in stats(client, admin)["workers"] if w["pid"] == pid), None)


def job_status(job_id):
    from webapp.models import Job

    return Job.objects.get(id=job_id).status


# --- heartbeats ---------------------------------------------------------------------------------


def test_consumers_report_heartbeats_a_killed_one_turns_dead_and_old_dead_records_go(client, admin, consumers):
    from webapp.models import WorkerBeat
    from webapp.timeutil import utcnow

    # Records of processes that died long ago: a day and more is cleaned up, less is kept (shown dead).
    now = utcnow()
    for worker_id, hours in (("gone-host:1", 25), ("recent-host:2", 23)):
        WorkerBeat(
            id=worker_id,
            host=worker_id.split(":")[0],
            pid=int(worker_id.split(":")[1]),
            started_at=now,
            beat_at=now - timedelta(hours=hours),
            heartbeat_seconds=2.0,
        ).save()

    first = consumers.start(workers=3)
    second = consumers.start(workers=2)
    for consumer, threads in ((first, 3), (second, 2)):
        record = wait_until(
            lambda c=consumer, t=threads: (w := worker_of(client, admin, c)) and w["threads"] == t and w,
            15,
            f"a heartbeat with {threads} threads from pid {consumer.process.pid}",
        )
        assert record["alive"] is True
        assert record["id"] == f"{record['host']}:{consumer.process.pid}"
        assert record["in_flight"] == []
        assert datetime.fromisoformat(record["started_at"]) <= datetime.fromisoformat(record["beat_at"])
    # Huey runs the start-up hook in each of the 3 worker threads: one maintenance thread all the same.
    assert first.log_path.read_text().count("a heartbeat every") == 1
    ids = {w["id"]: w for w in stats(client, admin)["workers"]}
    assert "gone-host:1" not in ids  # cleaned up by a live consumer
    assert ids["recent-host:2"]["alive"] is False  # dead, kept for the rest of the day

    # Alive between beats: checked for a while, it never flickers.
    deadline = time.monotonic() + 3 * FAST_BEAT
    while time.monotonic() < deadline:
        assert worker_of(client, admin, first)["alive"] is True
        time.sleep(0.05)

    first.kill()  # SIGKILL: no goodbye
    killed_at = time.monotonic()
    assert worker_of(client, admin, first)["alive"] is True  # not dead at once: it might just be slow
    wait_until(lambda: worker_of(client, admin, first)["alive"] is False, 10, "the killed consumer to show dead")
    seconds_to_dead = time.monotonic() - killed_at
    # Three missed beats of 0.5 s, plus up to one beat of phase and the polling.
    assert 1.0 <= seconds_to_dead <= 3 * FAST_BEAT + FAST_BEAT + 1.0, seconds_to_dead
    assert worker_of(client, admin, second)["alive"] is True

    # A clean stop says goodbye: the record goes instead of turning dead.
    second.stop()
    assert worker_of(client, admin, second) is None
    assert worker_of(client, admin, first)["alive"] is False


def test_jobs_in_flight_are_listed_on_the_heartbeat_with_their_ids(client, admin, api, consumers, smtp):
    consumer = consumers.start(workers=3)
    wait_until(lambda: worker_of(client, admin, consumer), 15, "the consumer's first heartbeat")
    smtp.stall_data(2.0)
    user = api.user()
    ids = sorted(create_job(client, user, subject=f"Slow {n}")["id"] for n in range(2))

    seen = wait_until(
        lambda: sorted(worker_of(client, admin, consumer)["in_flight"]) == ids and ids, 10, "both jobs listed in flight"
    )
    assert seen == ids
    smtp.wait_for(2, timeout=15)
    wait_until(lambda: worker_of(client, admin, consumer)["in_flight"] == [], 10, "the in-flight list to empty")


# --- the figures ----------------------------------------------------------------------------------


def totals_of(rates):
    return {name: sum(point[name] for point in rates) for name in ("sent", "failed", "retried")}


def test_stats_match_the_jobs_a_real_consumer_delivered(client, admin, api, consumers, smtp):
    consumer = consumers.start(workers=3)
    wait_until(lambda: worker_of(client, admin, consumer), 15, "the consumer's first heartbeat")
    clear_figures()
    user = api.user()
    smtp.reject_recipients({"nobody@example.com": "550 5.1.1 No such user"})
    smtp.queue_data_responses(["451 4.3.0 Try again later"])  # one DATA is deferred once, then retried
    send_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    [create_job(client, user, subject=f"Due {n}", send_at=iso(send_at)) for n in range(6)]
    failed = create_job(client, user, to="nobody@example.com", subject="Bounces", send_at=iso(send_at))
    later = [create_job(client, user, subject="Next week", send_at=iso(send_at + timedelta(days=7))) for _ in range(2)]
    client.post(f"/api/users/jobs/{later[1]['id']}/cancel", headers=user)

    messages = smtp.wait_for(6, timeout=20)
    wait_until(lambda: job_status(failed["id"]) == "FAILED", 10, "the bouncing job to fail")
    # A beat writes the figures, then the heartbeat that carries the SMTP state: wait for both.
    figures = wait_until(
        lambda: (
            (s := stats(client, admin))
            and totals_of(s["rates"]["per_minute"])["sent"] == 6
            and totals_of(s["rates"]["per_minute"])["failed"] == 1
            and s["smtp"]["ok"] is not None
            and s
        ),
        10,
        "the consumer to flush its figures and its heartbeat",
    )

    assert figures["counts"] == {"PENDING": 1, "RUNNING": 0, "COMPLETED": 6, "FAILED": 1, "CANCELLED": 1, "IN_DOUBT": 0}
    assert totals_of(figures["rates"]["per_minute"]) == {"sent": 6, "failed": 1, "retried": 1}
    assert figures["rates"]["per_day"][-1] == {
        "day": datetime.now(UTC).strftime("%Y-%m-%d"),
        "sent": 6,
        "failed": 1,
        "retried": 1,
    }
    assert totals_of(figures["rates"]["per_day"]) == {"sent": 6, "failed": 1, "retried": 1}
    minutes = [datetime.fromisoformat(point["minute"]) for point in figures["rates"]["per_minute"]]
    assert len(minutes) == 60 and all(b - a == timedelta(minutes=1) for a, b in zip(minutes, minutes[1:]))
    assert minutes[-1] <= datetime.now(UTC) < minutes[-1] + timedelta(minutes=1, seconds=5)
    assert len(figures["rates"]["per_day"]) == 30

    # Lateness: send_at to the server's 250, as the SMTP server itself saw the messages arrive.
    observed = sorted(message.received_at - send_at.timestamp() for message in messages)
    lateness = figures["lateness"]
    assert set(lateness) == {"p50", "p95", "p99", "max"}
    assert 0 <= lateness["p50"] <= lateness["p95"] <= lateness["p99"] <= lateness["max"]
    # The max is exact (the worker reads its clock just after the server's reply arrives).
    assert observed[-1] - 0.05 <= lateness["max"] <= observed[-1] + 0.5, (observed, lateness)
    # The deferred job waited out a backoff (0.25-0.5 s here): it is the late one.
    assert lateness["max"] >= 0.25
    assert figures["overdue"] == {"count": 0, "oldest_seconds": None}
    assert figures["paused"] is False
    assert set(figures) == {
        "counts",
        "counted_at",
        "overdue",
        "rates",
        "lateness",
        "workers",
        "queue",
        "paused",
        "smtp",
    }
    # JOB_COUNTS_SECONDS=0 in the suite: the counts above were counted for this very request.
    assert send_at <= datetime.fromisoformat(figures["counted_at"]) <= datetime.now(UTC)
    assert figures["smtp"]["ok"] is True and figures["smtp"]["last_error"] is None
    assert datetime.fromisoformat(figures["smtp"]["last_ok_at"]).timestamp() >= send_at.timestamp()

    # Flushed once: two more beats later the figures have not moved.
    time.sleep(3 * FAST_BEAT)
    assert totals_of(stats(client, admin)["rates"]["per_minute"]) == {"sent": 6, "failed": 1, "retried": 1}


def test_overdue_and_queue_figures_without_a_consumer(client, admin, api, app, consumers):
    from webapp.models import Job
    from webapp.services.jobs import actions as job_service
    from webapp.services.validation import JobInput

    # No consumer runs: these jobs wait. Two are more than OVERDUE_SECONDS (300) late, one is not.
    owner = ObjectId()
    now = datetime.now(UTC)
    for minutes in (10, 6, 1):
        job = job_service.create_job(
            owner, JobInput(to=["x@example.com"], subject=f"Late {minutes}", body="b"), "s@example.com", 5
        )
        Job.objects(id=job.id).update(set__next_attempt_at=now - timedelta(minutes=minutes))
    before = stats(client, admin)
    assert before["overdue"]["count"] == 2
    assert 600 <= before["overdue"]["oldest_seconds"] < 620

    # The queue: the task for now waits in it; tomorrow's goes straight to Huey's schedule (the API
    # puts it there, where a consumer would otherwise move it). No consumer runs, so nothing takes them.
    user = api.user()
    create_job(client, user, subject="Tomorrow", send_at=iso(now + timedelta(days=1)))
    create_job(client, user, subject="Now")
    queue = stats(client, admin)["queue"]
    assert queue == {"pending": before["queue"]["pending"] + 1, "scheduled": before["queue"]["scheduled"] + 1}

    pages = PageClient(app.test_client())
    pages.login(client.get("/api/users/me", headers=admin).json["email"])
    board = pages.get("/admin").get_data(as_text=True)
    tile = r'id="tile-overdue">\s*<span class="tile-label">Overdue</span>\s*<span class="tile-value">2<'
    assert re.search(tile, board)
    assert 'href="/admin/jobs?overdue=1"' in board
    backlog = pages.get("/admin/jobs?overdue=1").get_data(as_text=True)
    assert backlog.index("Late 10") < backlog.index("Late 6")  # the longest-waiting first
    assert "Late 1<" not in backlog


# --- pause and resume -------------------------------------------------------------------------------


def delivery_state(client, admin):
    return client.get("/api/admin/delivery", headers=admin).json


def test_pause_holds_a_due_job_back_and_resume_sends_it_once(client, admin, api, consumers, smtp):
    consumer = consumers.start(workers=3)
    wait_until(lambda: worker_of(client, admin, consumer), 15, "the consumer's first heartbeat")
    user = api.user()

    # A send in flight when the pause comes finishes.
    smtp.stall_data(1.5)
    in_flight = create_job(client, user, subject="Already going out")
    wait_until(lambda: job_status(in_flight["id"]) == "RUNNING", 10, "the first job to be claimed")
    paused = client.post("/api/admin/delivery/pause", headers=admin)
    assert paused.status_code == 200
    assert paused.json["paused"] is True and paused.json["workers"] == 1
    state = wait_until(
        lambda: (s := delivery_state(client, admin))["acknowledged_by"] == 1 and s, 5, "the consumer to see the pause"
    )
    assert state["paused_by"].startswith("admin-")
    wait_until(lambda: job_status(in_flight["id"]) == "COMPLETED", 10, "the send in flight to finish")
    smtp.stall_data(0)

    # Pausing again changes nothing (the first pause's time stays).
    again = client.post("/api/admin/delivery/pause", headers=admin).json
    assert again["paused_at"] == state["paused_at"]

    held = create_job(client, user, subject="Held back")
    time.sleep(3)  # due all along: three seconds, six heartbeats, and not sent
    assert job_status(held["id"]) == "PENDING"
    assert smtp.count_by_message_id()[held["message_id"]] == 0
    assert stats(client, admin)["paused"] is True
    health = client.get("/api/health").json
    assert health["status"] == "degraded" and health["paused"] is True

    resumed = client.post("/api/admin/delivery/resume", headers=admin)
    assert resumed.status_code == 200
    assert resumed.json["paused"] is False and resumed.json["queued"] >= 1
    wait_until(lambda: smtp.count_by_message_id()[held["message_id"]] == 1, 5, "the held job to go out")
    wait_until(lambda: job_status(held["id"]) == "COMPLETED", 5, "the held job to be recorded as sent")
    time.sleep(2)  # every queued copy of its task has run by now: still once
    assert smtp.count_by_message_id()[held["message_id"]] == 1
    assert smtp.count_by_message_id()[in_flight["message_id"]] == 1
    assert client.get("/api/health").json["status"] == "ok"


def test_only_admins_pause_and_see_the_figures(client, api, admin):
    user = api.user()
    for method, path in (
        ("get", "/api/admin/stats"),
        ("get", "/api/admin/delivery"),
        ("post", "/api/admin/delivery/pause"),
        ("post", "/api/admin/delivery/resume"),
    ):
        response = getattr(client, method)(path, headers=user)
        assert response.status_code == 403, path
        assert response.json["error"]["code"] == "forbidden"
        assert getattr(client, method)(path).status_code == 401, path
    assert delivery_state(client, admin)["paused"] is False


# --- health ---------------------------------------------------------------------------------------------


def test_health_is_degraded_without_a_live_consumer_and_ok_with_one(client, admin, consumers):
    alone = client.get("/api/health")
    assert alone.status_code == 200
    assert alone.json == {"status": "degraded", "database": "ok", "workers_alive": 0, "paused": False}
    consumer = consumers.start(workers=1)
    wait_until(lambda: worker_of(client, admin, consumer), 15, "the consumer's first heartbeat")
    assert client.get("/api/health").json == {"status": "ok", "database": "ok", "workers_alive": 1, "paused": False}


# --- the SMTP server's state ------------------------------------------------------------------------------


class RefusingAuthenticator:
    """An SMTP server whose AUTH refuses every password, as a real one does after a password change."""

    def __call__(self, server, session, envelope, mechanism, auth_data):
        return AuthResult(success=False, handled=False)


def send_and_classify(app, port, **settings):
    """Send one message with the real mailer to 127.0.0.1:`port`; what the tally makes of the failure."""
    from webapp.mail.mailer import SmtpError
    from webapp.mail.mailer import send_email
    from webapp.services.monitoring.tally import smtp_problem

    mail = SimpleNamespace(
        **{
            "server": "127.0.0.1",
            "port": port,
            "use_ssl": False,
            "use_tls": False,
            "debug": 0,
            "username": None,
            "password": None,
            "default_sender": "s@example.com",
            **settings,
        }
    )
    job = SimpleNamespace(subject="Classified", to=["reader@example.com"], body="b", message_id="<c@example.com>")
    with pytest.raises(SmtpError) as failure, app.app_context():  # flask-mail builds the message
        send_email(mail, job, 3, lambda: None, lambda: None)
    return smtp_problem(failure.value)


# The mailer closes the socket when STARTTLS or AUTH fails (webapp/mail/connections.py): no
# ResourceWarning is left for the collector, and warnings are errors here.
def test_smtp_failures_about_the_server_or_the_account_are_told_from_replies_about_a_message(smtp, app):
    closed = free_port()
    kind, text = send_and_classify(app, closed)
    assert kind == "connection" and "Connection refused" in text
    kind, _ = send_and_classify(app, smtp.port, use_tls=True)  # the test server offers no STARTTLS
    assert kind == "tls"
    smtp.reject_recipients({"reader@example.com": "550 5.1.1 No such user"})
    assert send_and_classify(app, smtp.port) is None  # a recipient refused: not the server's state
    smtp.reset_faults()
    smtp.queue_data_responses(["451 4.3.0 Try again later"])
    assert send_and_classify(app, smtp.port) is None  # a deferred message: not the server's state either
    server = Controller(
        object(),
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=RefusingAuthenticator(),
        auth_require_tls=False,
        server_hostname="smtp-auth-test",
    )
    server.start()
    try:
        kind, text = send_and_classify(app, server.port, username="mailjobs", password="wrong")
    finally:
        server.stop()
    assert kind == "auth" and text.startswith("535")


def test_a_wrong_smtp_password_shows_as_an_auth_error(client, admin, api, consumers, smtp):
    server = Controller(
        object(),
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=RefusingAuthenticator(),
        auth_require_tls=False,
        server_hostname="smtp-auth-test",
    )
    server.start()
    try:
        consumer = consumers.start(
            workers=1, MAIL_PORT=server.port, MAIL_USERNAME="mailjobs", MAIL_PASSWORD="not-the-password"
        )
        wait_until(lambda: worker_of(client, admin, consumer), 15, "the consumer's first heartbeat")
        create_job(client, api.user(), subject="Will not get through")
        smtp_state = wait_until(
            lambda: (s := stats(client, admin)["smtp"])["last_error"] and s, 10, "the AUTH failure to be reported"
        )
    finally:
        server.stop()
    assert smtp_state["ok"] is False
    assert smtp_state["last_error"]["kind"] == "auth"
    assert smtp_state["last_error"]["text"].startswith("535")
    assert smtp_state["last_ok_at"] is None
