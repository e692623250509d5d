"""Mail transport: the SMTP server's certificate is verified, and a broken connection or account
holds mail back without using any of its attempts.

Against a real Mailpit (v1.33.1, built by `make test`) that requires STARTTLS
and AUTH, with certificates made here: a private CA and a server certificate
it signed for `localhost`, and a self-signed one. Jobs are delivered through
the real services (claim, send, record) from this thread, as one worker
thread would; the last test runs a real consumer process. What the server
stored is read back through Mailpit's HTTP API.
"""

import gc
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from bson import ObjectId

from tasks.delivery import deliver_job
from tasks.queue import huey
from tasks.queue import make_huey
from tests.support.consumer import HueyConsumer
from tests.support.mailpit import BUILD_HINT
from tests.support.mailpit import MailpitServer
from tests.support.mailpit import mailpit_binary
from tests.support.tls_certs import PrivateCA
from tests.support.tls_certs import self_signed
from webapp.extensions import Mail
from webapp.mail.connections import CONNECTIONS
from webapp.mail.mailer import send_email
from webapp.mail.tls import warn_if_unverified
from webapp.models import Job
from webapp.models import JobStatus
from webapp.services.delivery.rules import DeliverySettings
from webapp.services.delivery.rules import deliver
from webapp.services.jobs import actions
from webapp.services.validation import JobInput
from webapp.services.validation import parse
from webapp.timeutil import as_utc
from webapp.timeutil import utcnow

USER = "mailjobs"
PASSWORD = "relay-secret-7"
SENDER = "scheduler@mailjobs.test"
SETTINGS = DeliverySettings(lease_seconds=30, retry_base_seconds=0.5, retry_cap_seconds=2)
MAX_ATTEMPTS = 5


@pytest.fixture(scope="session")
def mailpit_bin():
    binary = mailpit_binary()
    if binary is None:  # never a silent skip: the suite must prove the transport
        pytest.fail(BUILD_HINT, pytrace=False)
    return binary


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """A private CA with a server certificate for `localhost` only, and a self-signed one."""
    directory = tmp_path_factory.mktemp("certs")
    ca = PrivateCA(directory)
    return {
        "ca": ca.files,
        "server": ca.issue("server", ["localhost"]),
        "self_signed": self_signed(directory, "self-signed", ["localhost", "127.0.0.1"]),
    }


@pytest.fixture(scope="session")
def relay(mailpit_bin, certs, tmp_path_factory):
    """Mailpit with the CA-signed certificate, STARTTLS and AUTH required, as a company relay would be."""
    server = MailpitServer(
        mailpit_bin, tmp_path_factory.mktemp("relay"), cert=certs["server"], users={USER: PASSWORD}
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rogue(mailpit_bin, certs, tmp_path_factory):
    """Mailpit with a self-signed certificate: what a man in the middle would present."""
    server = MailpitServer(
        mailpit_bin, tmp_path_factory.mktemp("rogue"), cert=certs["self_signed"], users={USER: PASSWORD}
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_relay(mailpit_bin, certs, tmp_path_factory):
    """Mailpit speaking TLS from the first byte (port 465 style, MAIL_USE_SSL), AUTH required."""
    server = MailpitServer(
        mailpit_bin,
        tmp_path_factory.mktemp("tls-relay"),
        cert=certs["server"],
        users={USER: PASSWORD},
        implicit_tls=True,
    ).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def fresh_servers(request):
    """Each test starts with empty mailboxes and no SMTP connection kept by this thread."""
    CONNECTIONS.close_mine()
    for name in ("relay", "rogue", "tls_relay"):
        if name in request.fixturenames:
            request.getfixturevalue(name).clear()
    yield
    CONNECTIONS.close_mine()


def mail_state(app, server, **settings):
    """The flask-mail state the app would build from these settings (webapp.extensions.Mail)."""
    config = {
        **app.config,
        "MAIL_SERVER": "localhost",
        "MAIL_PORT": server.smtp_port,
        "MAIL_USE_TLS": True,
        "MAIL_USE_SSL": False,
        "MAIL_USERNAME": USER,
        "MAIL_PASSWORD": PASSWORD,
        "MAIL_TLS_VERIFY": True,
        "MAIL_TLS_CA_FILE": None,
        **settings,
    }
    return Mail().init_mail(config)


def new_job(subject="Hello", body="Hi", to="reader@example.com"):
    data = parse(JobInput, {"to": to, "subject": subject, "body": body})
    return actions.create_job(ObjectId(), data, SENDER, MAX_ATTEMPTS)


def send_now(mail, job):
    """Claim and deliver `job` from this thread, as a worker thread does (connection closed after)."""
    return deliver(
        job.id,
        "tls-test-worker",
        SETTINGS,
        lambda job, before_data, on_accepted: send_email(mail, job, 5, before_data, on_accepted, 0),
    )


def worker_env(**overrides):
    """The environment of a process the test starts: the suite's (conftest put it in os.environ) plus these."""
    return {**os.environ, **{name: str(value) for name, value in overrides.items()}}


def stored(job):
    return Job._get_collection().find_one({"_id": job.id})


def make_due(job):
    Job._get_collection().update_one({"_id": job.id}, {"$set": {"next_attempt_at": utcnow()}})


def established_to(port):
    """How many TCP connections this machine has open towards `port` (our side of each), from /proc."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01":  # 01: ESTABLISHED
                count += 1
    return count


def assert_waiting(job, kind):
    """The job is PENDING for later, none of its attempts used, and says why."""
    doc = stored(job)
    assert doc["status"] == JobStatus.PENDING
    assert doc["attempts"] == 0 and doc["attempts_left"] == MAX_ATTEMPTS
    assert doc["attempts_log"] == []
    assert doc["last_error"].startswith(f"{kind}: "), doc["last_error"]
    assert as_utc(doc["next_attempt_at"]) > as_utc(doc["updated_at"])  # later, with backoff
    return doc


def test_with_the_private_ca_given_the_message_goes_out_over_starttls_and_auth_as_written(app, relay, certs):
    mail = mail_state(app, relay, MAIL_TLS_CA_FILE=str(certs["ca"].cert))
    body = "Grüße aus Köln: déjà vu, 東京, ✉\nsecond line\n"
    job = new_job(subject="Réunion à 9 h ✓", body=body, to="Zoë Ünal <zoe@example.com>")

    assert send_now(mail, job).outcome == "sent"

    doc = stored(job)
    assert doc["status"] == JobStatus.COMPLETED and doc["attempts"] == 1 and doc.get("last_error") is None
    [summary] = relay.messages()
    assert summary["MessageID"] == job.message_id.strip("<>")
    message = relay.message(summary["ID"])
    assert message["Subject"] == "Réunion à 9 h ✓"
    assert message["From"]["Address"] == SENDER
    assert [(to["Name"], to["Address"]) for to in message["To"]] == [("Zoë Ünal", "zoe@example.com")]
    assert message["Text"].replace("\r\n", "\n") == body  # the UTF-8 body as the server stored it
    headers = relay.headers(summary["ID"])
    assert headers["Message-Id"] == [job.message_id]
    assert "utf-8" in headers["Content-Type"][0].lower()
    assert headers["Date"]
    # The relay refuses MAIL before STARTTLS and AUTH, so this message came over both.
    assert b"\r\nSubject: =?utf-8?" in relay.raw(summary["ID"])


def test_an_unverifiable_certificate_is_refused_and_the_job_waits_without_using_attempts(app, rogue):
    mail = mail_state(app, rogue)  # no MAIL_TLS_CA_FILE: the system's CAs, which never signed it
    job = new_job()

    delays = []
    gc.disable()  # a socket left open must show as open, not be closed by the collector meanwhile
    try:
        for _ in range(MAX_ATTEMPTS + 2):  # more tries than the job has attempts: it never fails for this
            before = utcnow()
            result = send_now(mail, job)
            assert result.outcome == "waiting"
            assert established_to(rogue.smtp_port) == 0  # the refused handshake left no socket open
            doc = assert_waiting(job, "tls")
            delays.append((as_utc(doc["next_attempt_at"]) - before).total_seconds())
            make_due(job)
    finally:
        gc.enable()

    assert "certificate verify failed: self-signed certificate" in doc["last_error"]
    assert doc["transport_waits"] == MAX_ATTEMPTS + 2
    # Backoff per wait: base 0.5 s doubling, capped at 2 s, each a random 50-100 % of it.
    ceilings = [min(2.0, 0.5 * 2**n) for n in range(len(delays))]
    assert all(ceiling / 2 - 0.05 <= delay <= ceiling + 0.5 for delay, ceiling in zip(delays, ceilings, strict=True))
    assert rogue.messages() == []  # nothing, not even the AUTH password, went to the impostor


def test_a_certificate_for_another_host_name_is_refused(app, relay, certs):
    # The certificate is the CA's and valid, but names `localhost`, not 127.0.0.1.
    mail = mail_state(app, relay, MAIL_SERVER="127.0.0.1", MAIL_TLS_CA_FILE=str(certs["ca"].cert))
    job = new_job()

    assert send_now(mail, job).outcome == "waiting"

    doc = assert_waiting(job, "tls")
    assert "IP address mismatch" in doc["last_error"]
    assert relay.messages() == []


def test_a_wrong_password_holds_mail_back_until_it_is_fixed_then_it_goes_out_once(app, relay, certs):
    ca_file = str(certs["ca"].cert)
    wrong = mail_state(app, relay, MAIL_PASSWORD="last-years-password", MAIL_TLS_CA_FILE=ca_file)
    job = new_job(subject="Held back by a wrong password")
    gc.disable()  # a socket left open must show as open, not be closed by the collector meanwhile
    try:
        for _ in range(MAX_ATTEMPTS + 1):
            assert send_now(wrong, job).outcome == "waiting"
            # The connection is closed once AUTH failed: no socket left open towards the relay.
            assert established_to(relay.smtp_port) == 0
            doc = assert_waiting(job, "auth")
            assert doc["last_error"].startswith("auth: 535 ")
            make_due(job)
    finally:
        gc.enable()
    assert relay.messages() == []

    right = mail_state(app, relay, MAIL_TLS_CA_FILE=ca_file)
    assert send_now(right, job).outcome == "sent"
    assert send_now(right, job).outcome == "skipped"  # a second task for it sends nothing

    doc = stored(job)
    assert doc["status"] == JobStatus.COMPLETED and doc["attempts"] == 1
    assert [attempt["outcome"] for attempt in doc["attempts_log"]] == ["sent"]
    assert [m["MessageID"] for m in relay.messages()] == [job.message_id.strip("<>")]


def test_smtp_over_tls_from_the_first_byte_is_verified_the_same_way(app, tls_relay, certs):
    unverified = mail_state(app, tls_relay, MAIL_USE_TLS=False, MAIL_USE_SSL=True)  # the system's CAs only
    job = new_job(subject="Over implicit TLS")

    assert send_now(unverified, job).outcome == "waiting"
    assert "certificate verify failed" in assert_waiting(job, "tls")["last_error"]
    assert tls_relay.messages() == []

    make_due(job)
    verified = mail_state(app, tls_relay, MAIL_USE_TLS=False, MAIL_USE_SSL=True, MAIL_TLS_CA_FILE=str(certs["ca"].cert))
    assert send_now(verified, job).outcome == "sent"
    assert [m["MessageID"] for m in tls_relay.messages()] == [job.message_id.strip("<>")]
    assert stored(job)["attempts"] == 1


def test_an_unreadable_ca_file_is_a_tls_setting_to_fix_not_a_failed_job(app, relay, tmp_path):
    mail = mail_state(app, relay, MAIL_TLS_CA_FILE=str(tmp_path / "moved-away.pem"))
    job = new_job()

    assert send_now(mail, job).outcome == "waiting"

    assert "moved-away.pem" in assert_waiting(job, "tls")["last_error"]


def test_a_refused_connection_waits_without_using_attempts(app, relay):
    from tests.support.ferretdb import free_port

    mail = mail_state(app, relay, MAIL_PORT=free_port())  # nothing listens there
    job = new_job()

    assert send_now(mail, job).outcome == "waiting"

    assert "Connection refused" in assert_waiting(job, "connection")["last_error"]


def test_the_app_warns_at_start_when_verification_is_switched_off(caplog):
    with caplog.at_level("WARNING"):
        assert warn_if_unverified({"MAIL_TLS_VERIFY": True, "MAIL_USE_TLS": True}) is False
        assert caplog.records == []
        assert (
            warn_if_unverified(
                {"MAIL_TLS_VERIFY": False, "MAIL_USE_TLS": True, "MAIL_SERVER": "smtp.example", "MAIL_PORT": 587}
            )
            is True
        )
    [record] = caplog.records
    assert "MAIL_TLS_VERIFY=false" in record.getMessage() and "NOT verified" in record.getMessage()
    # The web app builds itself with create_app, which says it as it starts (gunicorn imports wsgi).
    env = worker_env(MAIL_TLS_VERIFY="false", MAIL_USE_TLS="true")
    started = subprocess.run([sys.executable, "-c", "import wsgi"], env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    assert "WARNING webapp.mail.tls: MAIL_TLS_VERIFY=false" in started.stderr


def test_with_verification_switched_off_a_consumer_delivers_to_a_self_signed_server_and_warns(app, rogue, tmp_path):
    # A consumer of its own, on a queue of its own, configured the way an operator would (environment).
    queue_name = f"mailjobs-tls-{uuid.uuid4().hex[:8]}"
    env = worker_env(
        HUEY_NAME=queue_name,
        MAIL_SERVER="localhost",
        MAIL_PORT=rogue.smtp_port,
        MAIL_USE_TLS="true",
        MAIL_USERNAME=USER,
        MAIL_PASSWORD=PASSWORD,
        MAIL_TLS_VERIFY="false",
    )
    queue = huey_named(queue_name)
    consumer = HueyConsumer(env, tmp_path / "consumer.log", workers=1, periodic=False).start()
    try:
        job = new_job(subject="Sent without verification")
        # The task as the app queues it (signed by tasks.queue), put on that consumer's queue.
        queue.storage.enqueue(huey.serialize_task(deliver_job.s(str(job.id), None)))
        deadline = time.monotonic() + 20
        while stored(job)["status"] != JobStatus.COMPLETED and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stored(job)["status"] == JobStatus.COMPLETED, consumer.log_tail()
    finally:
        consumer.stop()
        queue.storage.flush_queue()
        queue.storage.conn.connection_pool.disconnect()  # its own Redis connection: closed, not left to gc
    assert [m["MessageID"] for m in rogue.messages()] == [job.message_id.strip("<>")]
    log = (tmp_path / "consumer.log").read_text()
    assert "MAIL_TLS_VERIFY=false: the certificate of the SMTP server localhost" in log


def huey_named(name):
    """A handle on another Huey queue: tasks.queue's storage and signing, under another name."""
    saved = os.environ["HUEY_NAME"]
    os.environ["HUEY_NAME"] = name
    try:
        return make_huey()
    finally:
        os.environ["HUEY_NAME"] = saved
