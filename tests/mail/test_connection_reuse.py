"""SMTP connections kept open between messages, with every delivery rule intact.

Against the real SMTP test server, which counts the connections clients open
and notes which connection carried each message. Most tests deliver through
the services in this thread (one worker thread, so which connection is reused
is certain); the last one goes through the suite's consumer (4 threads).
"""

import time

import pytest
from bson import ObjectId

from webapp.mail.connections import CONNECTIONS
from webapp.mail.mailer import send_email
from webapp.models import Job
from webapp.models import JobStatus
from webapp.services.delivery.rules import DeliverySettings
from webapp.services.delivery.rules import deliver
from webapp.services.jobs import actions
from webapp.services.validation import JobInput
from webapp.services.validation import parse

SETTINGS = DeliverySettings(lease_seconds=30, retry_base_seconds=0.5, retry_cap_seconds=2)
IDLE = 5.0


@pytest.fixture(autouse=True)
def no_connection_kept(smtp):
    """This thread starts and ends each test with no SMTP connection open, and the server's counts at 0."""
    CONNECTIONS.close_mine()
    smtp.clear()
    yield
    CONNECTIONS.close_mine()


def new_job(to="reader@example.com"):
    data = parse(JobInput, {"to": to, "subject": "s", "body": "b"})
    return actions.create_job(ObjectId(), data, "scheduler@mailjobs.test", 5)


def send_now(app, job, idle=IDLE):
    """Deliver `job` from this thread, as a worker thread would, reusing its connection."""
    mail = app.extensions["mail"]
    return deliver(
        job.id,
        "worker",
        SETTINGS,
        lambda job, before_data, on_accepted: send_email(mail, job, 5, before_data, on_accepted, idle),
    )


def stored(job):
    return Job._get_collection().find_one({"_id": job.id})


def test_one_thread_sends_message_after_message_over_one_connection(app, smtp):
    sent = [new_job(f"r{i}@example.com") for i in range(5)]
    assert [send_now(app, job).outcome for job in sent] == ["sent"] * 5

    messages = smtp.wait_for(5)
    assert smtp.connections == 1
    assert len({message.peer for message in messages}) == 1
    # One transaction per message: each its own envelope, each job its own claim and history.
    assert sorted(m.rcpt_tos[0] for m in messages) == [f"r{i}@example.com" for i in range(5)]
    assert all(stored(job)["attempts_log"][0]["outcome"] == "sent" for job in sent)


def test_after_a_refused_recipient_the_connection_is_reset_and_the_next_message_goes_out(app, smtp):
    smtp.reject_recipients({"gone@example.com": "550 5.1.1 No such user"})
    refused, next_one = new_job("gone@example.com"), new_job("here@example.com")

    assert send_now(app, refused).outcome == "failed"
    assert send_now(app, next_one).outcome == "sent"

    [message] = smtp.wait_for(1)
    assert message.rcpt_tos == ["here@example.com"]
    assert smtp.connections == 1  # the same connection, RSET after the refusal
    doc = stored(next_one)
    assert doc["status"] == JobStatus.COMPLETED and doc["attempts"] == 1


@pytest.mark.parametrize(
    "goodbye", ["421 4.4.2 smtp-test Error: timeout exceeded", None], ids=["421-then-close", "silent-close"]
)
def test_a_connection_the_server_closed_while_idle_is_replaced_without_an_extra_attempt(app, smtp, goodbye):
    first, second = new_job("first@example.com"), new_job("second@example.com")
    assert send_now(app, first).outcome == "sent"
    assert smtp.drop_connections(goodbye) >= 1  # ours, and any the suite's consumer keeps idle

    assert send_now(app, second).outcome == "sent"

    assert len(smtp.wait_for(2)) == 2
    assert smtp.connections == 2
    doc = stored(second)
    assert doc["status"] == JobStatus.COMPLETED and doc["attempts"] == 1
    assert [entry["outcome"] for entry in doc["attempts_log"]] == ["sent"]


def test_a_connection_idle_past_the_limit_is_closed_and_not_reused(app, smtp):
    assert send_now(app, new_job(), idle=0.3).outcome == "sent"
    time.sleep(0.4)
    # The maintenance thread closes it; the next message opens a fresh one either way.
    assert CONNECTIONS.close_idle(0.3) == 1
    assert send_now(app, new_job(), idle=0.3).outcome == "sent"
    assert smtp.connections == 2


def test_with_mail_idle_seconds_0_every_message_has_its_own_connection(app, smtp):
    for _ in range(3):
        assert send_now(app, new_job(), idle=0).outcome == "sent"
    assert smtp.connections == 3


def test_twenty_jobs_on_a_consumer_of_four_threads_use_at_most_four_connections(client, api, smtp, consumer):
    headers = api.user()
    created = [
        client.post(
            "/api/users/jobs", headers=headers, json={"to": f"many{i}@example.com", "subject": f"many {i}", "body": "b"}
        ).json
        for i in range(20)
    ]

    messages = smtp.wait_for(20, timeout=30)
    assert sorted(m.message_id for m in messages) == sorted(job["message_id"] for job in created)
    # Connections its threads kept from earlier tests may carry some: count the ones these used.
    assert 1 <= len({message.peer for message in messages}) <= 4
    assert smtp.connections <= 4
