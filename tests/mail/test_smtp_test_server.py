"""The SMTP test server does what the delivery tests rely on: accept, refuse, stall, count."""

import smtplib
import threading
import time
from email.message import EmailMessage

import pytest

from tests.support.smtp import SmtpTestServer


@pytest.fixture
def smtp():
    server = SmtpTestServer()
    server.start()
    yield server
    server.stop()


def send(server, to="alice@example.com", message_id="<m1@test>", timeout=5):
    message = EmailMessage()
    message["From"] = "scheduler@localhost"
    message["To"] = to
    message["Subject"] = "Hello"
    message["Message-ID"] = message_id
    message.set_content("Hi there")
    with smtplib.SMTP(server.host, server.port, timeout=timeout) as client:
        client.send_message(message)


def test_accepted_message_is_recorded_and_parsed(smtp):
    send(smtp)

    [received] = smtp.wait_for(1)
    assert received.mail_from == "scheduler@localhost"
    assert received.rcpt_tos == ["alice@example.com"]
    assert received.message["Subject"] == "Hello"
    assert received.message.get_content().strip() == "Hi there"
    assert received.message_id == "<m1@test>"
    assert smtp.count_by_message_id() == {"<m1@test>": 1}


def test_scripted_451_refuses_then_next_data_is_accepted(smtp):
    smtp.queue_data_responses(["451 4.3.0 Try later"])

    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(smtp)
    send(smtp)

    assert refused.value.smtp_code == 451
    assert len(smtp.wait_for(1)) == 1


def test_rejected_recipient_gets_550_and_nothing_is_recorded(smtp):
    smtp.reject_recipients({"Bad@Example.com": "550 5.1.1 No such user"})

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(smtp, to="bad@example.com")

    assert refused.value.recipients["bad@example.com"][0] == 550
    assert smtp.messages == []


def test_wait_for_times_out_with_what_it_has(smtp):
    send(smtp)

    with pytest.raises(AssertionError, match=r"at least 2 .* got 1"):
        smtp.wait_for(2, timeout=0.2)


def test_stalled_message_is_recorded_even_if_the_client_gave_up(smtp):
    smtp.stall_data(1.0)

    with pytest.raises((TimeoutError, smtplib.SMTPServerDisconnected)):
        send(smtp, timeout=0.3)

    [received] = smtp.wait_for(1, timeout=5)
    assert received.message_id == "<m1@test>"


def test_stop_does_not_wait_for_a_stalled_handler():
    server = SmtpTestServer()
    server.start()
    server.stall_data(60)
    client = threading.Thread(target=_send_ignoring_errors, args=(server,), daemon=True)
    client.start()
    time.sleep(0.3)  # let the client reach DATA

    started = time.monotonic()
    server.stop()

    assert time.monotonic() - started < 5
    assert server.messages == []


def _send_ignoring_errors(server):
    try:
        send(server, timeout=30)
    except (OSError, smtplib.SMTPException):
        pass
