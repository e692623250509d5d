"""What arrives at a real SMTP server: international addresses, display names, any body.

Jobs are created through the API and sent by the suite's consumer to the
aiosmtpd server of tests/support/smtp.py, which decodes what it got; the
"no SMTPUTF8" case talks to a second aiosmtpd server that does not offer it.
"""

import copy
import time

import pytest

from tests.support.smtp import SmtpTestServer

# Every line of a message must stay under 998 octets plus CRLF (RFC 5322 §2.1.1); we fold at 78.
MAX_LINE = 998


def create(client, headers, **fields):
    payload = {"to": "reader@example.com", "subject": "s", "body": "b", **fields}
    response = client.post("/api/users/jobs", json=payload, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def final_state(client, headers, job_id, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/users/jobs/{job_id}", headers=headers).json
        if job["status"] in {"COMPLETED", "FAILED"}:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never finished; last seen {job['status']}")


def delivered(client, headers, smtp, **fields):
    """Create a job due now, wait for it to be COMPLETED, and return (job, what the server got)."""
    job = create(client, headers, **fields)
    final = final_state(client, headers, job["id"])
    assert final["status"] == "COMPLETED", final
    [message] = [m for m in smtp.wait_for(1) if m.message_id == job["message_id"]]
    return final, message


def body_of(message):
    return message.message.get_content().replace("\r\n", "\n").removesuffix("\n")


def lines_of(message):
    return message.data.split(b"\r\n")


@pytest.mark.usefixtures("consumer")
def test_a_5000_character_line_and_a_body_of_emoji_and_accents_arrive_intact(client, api, smtp):
    headers = api.user()
    long_line = "".join(str(i % 10) for i in range(5000))
    final, message = delivered(client, headers, smtp, body=long_line)
    assert body_of(message) == long_line
    assert max(len(line) for line in lines_of(message)) <= 78
    assert message.message["Content-Transfer-Encoding"] in {"quoted-printable", "base64"}

    smtp.clear()
    text = "Grüße, 😀🎉 café crème, 日本語\nsecond line — “quoted” ½ € 𝄞\ttab\n" + "é" * 3000
    _, message = delivered(client, headers, smtp, subject="Émojis 😀 et accents", body=text)
    assert body_of(message) == text
    assert str(message.message["Subject"]) == "Émojis 😀 et accents"
    assert max(len(line) for line in lines_of(message)) <= MAX_LINE
    assert message.data.isascii()  # a 7bit-clean message: no server can mangle it


@pytest.mark.usefixtures("consumer")
def test_an_idn_domain_is_delivered_idna_encoded_in_the_envelope_and_the_headers(client, api, smtp):
    headers = api.user()
    job, message = delivered(client, headers, smtp, to=["ascii@BÜCHER.example", "x@例子.广告"])
    assert job["to"] == ["ascii@bücher.example", "x@例子.广告"]  # stored and shown as typed, domain lower-cased
    assert message.rcpt_tos == ["ascii@xn--bcher-kva.example", "x@xn--fsqu00a.xn--4rr70v"]
    assert message.message["To"].addresses[0].domain == "xn--bcher-kva.example"
    assert "SMTPUTF8" not in message.mail_options  # plain SMTP does for an ASCII local part


@pytest.mark.usefixtures("consumer")
def test_a_non_ascii_local_part_goes_out_over_smtputf8_when_the_server_offers_it(client, api, smtp):
    headers = api.user()
    _, message = delivered(client, headers, smtp, to=["josé@exämple.com", "用户@例子.广告"], subject="Olá")
    assert "SMTPUTF8" in message.mail_options
    assert message.rcpt_tos == ["josé@xn--exmple-cua.com", "用户@xn--fsqu00a.xn--4rr70v"]
    to_line = next(line for line in lines_of(message) if line.startswith(b"To: "))
    assert to_line.decode("utf-8") == "To: josé@exämple.com, 用户@例子.广告"


def test_without_smtputf8_a_non_ascii_local_part_fails_at_once_with_a_clear_error(app, smtp):
    """A server that does not offer SMTPUTF8 cannot take the address: FAILED after one attempt."""
    from bson import ObjectId

    from webapp.mail.mailer import send_email
    from webapp.services.delivery.rules import DeliverySettings
    from webapp.services.delivery.rules import deliver
    from webapp.services.jobs import actions
    from webapp.services.validation import JobInput
    from webapp.services.validation import parse

    plain = SmtpTestServer(smtputf8=False)
    plain.start()
    try:
        mail = copy.copy(app.extensions["mail"])
        mail.port = plain.port
        data = parse(JobInput, {"to": ["ok@example.com", "josé@example.com"], "subject": "s", "body": "b"})
        job = actions.create_job(ObjectId(), data, "scheduler@mailjobs.test", 5)

        def send(job, before_data, on_accepted):
            with app.app_context():
                send_email(mail, job, 5, before_data, on_accepted)

        result = deliver(job.id, "worker", DeliverySettings(lease_seconds=30), send)
        job.reload()
        assert result.outcome == "failed" and result.retry_at is None
        assert job.status == "FAILED" and job.attempts == 1
        assert job.last_error == (
            "the mail server does not offer SMTPUTF8, which the non-ASCII address "
            "josé@example.com needs; it cannot be delivered through this server"
        )
        assert plain.messages == []

        # The same server takes an IDN domain with an ASCII local part: IDNA needs no extension.
        data = parse(JobInput, {"to": "ascii@bücher.example", "subject": "s", "body": "b"})
        idn = actions.create_job(ObjectId(), data, "scheduler@mailjobs.test", 5)
        assert deliver(idn.id, "worker", DeliverySettings(lease_seconds=30), send).outcome == "sent"
        [message] = plain.wait_for(1)
        assert message.rcpt_tos == ["ascii@xn--bcher-kva.example"]
    finally:
        plain.stop()


@pytest.mark.usefixtures("consumer")
def test_a_display_name_is_kept_and_delivered_in_the_to_header(client, api, smtp):
    headers = api.user()
    job, message = delivered(
        client,
        headers,
        smtp,
        to=["Evil <x@example.com>", '"Lovelace, Ada" <ada@example.com>', "Zoë Ünal <zoe@example.com>"],
    )
    assert job["to"] == ["Evil <x@example.com>", '"Lovelace, Ada" <ada@example.com>', "Zoë Ünal <zoe@example.com>"]
    assert message.rcpt_tos == ["x@example.com", "ada@example.com", "zoe@example.com"]
    names = [(a.display_name, a.addr_spec) for a in message.message["To"].addresses]
    assert names == [("Evil", "x@example.com"), ("Lovelace, Ada", "ada@example.com"), ("Zoë Ünal", "zoe@example.com")]


@pytest.mark.usefixtures("consumer")
def test_one_mailbox_gets_one_copy_whatever_the_case_of_its_domain(client, api, smtp):
    headers = api.user()
    job, message = delivered(
        client,
        headers,
        smtp,
        to=[
            "ann@example.com",
            "ann@EXAMPLE.COM",
            "ann@Example.Com",
            "Ann <ann@example.com>",
            "ascii@bücher.example",
            "ascii@xn--bcher-kva.example",
            "Ann@example.com",
        ],
    )
    # Domains are case-insensitive (and IDNA is one spelling of the same name); local parts may
    # not be (RFC 5321 §2.4), so `Ann@` is another mailbox as far as we can know.
    assert job["to"] == ["ann@example.com", "ascii@bücher.example", "Ann@example.com"]
    assert message.rcpt_tos == ["ann@example.com", "ascii@xn--bcher-kva.example", "Ann@example.com"]
