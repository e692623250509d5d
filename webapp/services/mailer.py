"""One SMTP transaction per job, built on flask-mail, with the gaps it leaves closed.

flask-mail builds the message and holds the SMTP settings, but its
`Connection` opens SMTP with no timeout (a stalled server hangs a worker
forever), ignores recipients the server refused, and checks for newlines
only in some headers. So `send_email` drives the transaction step by step:
MAIL, RCPT for every recipient (any refusal aborts before any copy is sent),
then `before_data()` (the caller records the in-doubt window), then DATA,
then `on_accepted()` as soon as the server's 250 is read, before QUIT or
anything else that could fail or stall.
Errors come out as `TransientSmtpError` (try again later) or
`PermanentSmtpError` (give up), keeping the server's code and text. A
network failure after the message data started to go out is flagged
`in_doubt`: the server may have accepted the message without us hearing it.
"""

import smtplib
from flask_mail import Connection
from flask_mail import Message


class SmtpError(Exception):
    """An SMTP failure with the server's code (None for network errors).

    `in_doubt` is set when the connection failed after DATA began and no
    reply came: the message may or may not have been accepted.
    """

    def __init__(self, code, text, in_doubt=False):
        self.code = code
        self.text = text
        self.in_doubt = in_doubt
        super().__init__(self.describe())

    def describe(self):
        return f"{self.code} {self.text}" if self.code else self.text


class TransientSmtpError(SmtpError):
    """4xx, connection refused or reset, timeout, TLS handshake: try again later."""


class PermanentSmtpError(SmtpError):
    """5xx for the message or a recipient: retrying will not help."""


def _text(response):
    return response.decode("utf-8", "replace") if isinstance(response, bytes) else str(response)


def classify(code, response):
    """Turn an SMTP reply into the matching error class."""
    error = PermanentSmtpError if 500 <= code < 600 else TransientSmtpError
    return error(code, _text(response))


class TimedConnection(Connection):
    """flask-mail's connection, opened with a socket timeout."""

    def __init__(self, mail, timeout):
        super().__init__(mail)
        self.timeout = timeout

    def configure_host(self):
        if self.mail.use_ssl:
            host = smtplib.SMTP_SSL(self.mail.server, self.mail.port, timeout=self.timeout)
        else:
            host = smtplib.SMTP(self.mail.server, self.mail.port, timeout=self.timeout)
        host.set_debuglevel(int(self.mail.debug))
        if self.mail.use_tls:
            host.starttls()
        if self.mail.username and self.mail.password:
            host.login(self.mail.username, self.mail.password)
        return host


def build_message(job, sender):
    """The email for `job`, with its stable Message-ID."""
    message = Message(subject=job.subject, recipients=list(job.to), body=job.body, sender=sender)
    message.msgId = job.message_id
    if message.has_bad_headers():
        raise PermanentSmtpError(None, "a header contains a line break")
    return message


def _reset_quietly(host):
    # After a refusal the server may already have hung up (421); its reply is what we report.
    try:
        host.rset()
    except (smtplib.SMTPException, OSError):
        pass


def _transaction(host, sender, recipients, payload, before_data):
    host.ehlo_or_helo_if_needed()
    code, response = host.mail(sender)
    if code != 250:
        _reset_quietly(host)
        raise classify(code, response)
    refused = {}
    for recipient in recipients:
        code, response = host.rcpt(recipient)
        if code not in (250, 251):
            refused[recipient] = (code, response)
    if refused:
        _reset_quietly(host)
        # One permanent refusal fails the job; otherwise the whole job waits and retries.
        worst = max(refused.items(), key=lambda item: item[1][0])
        address, (code, response) = worst
        raise classify(code, f"{_text(response)} (recipient {address})")
    before_data()
    try:
        code, response = host.data(payload)
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        # The data went out (or started to) and no reply came back.
        raise TransientSmtpError(None, f"{type(exc).__name__}: {exc} (no reply to DATA)", in_doubt=True) from None
    if code != 250:
        raise classify(code, response)


def send_email(mail_state, job, timeout, before_data, on_accepted):
    """Deliver `job` through the app's flask-mail settings; raise SmtpError on failure.

    `before_data` runs after every recipient was accepted and before the
    message data is sent; if it raises, nothing is sent. `on_accepted` runs
    right after the server's 250 to DATA, before QUIT: from then on the job
    is delivered, whatever QUIT does. Exceptions from either callback pass
    through unchanged.
    """
    sender = mail_state.default_sender
    if isinstance(sender, tuple):
        sender = sender[1]
    message = build_message(job, sender)
    host = None
    try:
        host = TimedConnection(mail_state, timeout).configure_host()
        _transaction(host, sender, message.send_to, message.as_bytes(), before_data)
    except smtplib.SMTPResponseException as exc:
        # A reply, even to DATA, is a definite answer: the message was not taken.
        _close_quietly(host)
        raise classify(exc.smtp_code, exc.smtp_error) from None
    except SmtpError as exc:
        if exc.in_doubt:
            _drop(host)  # the connection is broken: QUIT would only wait for another timeout
        else:
            _close_quietly(host)
        raise
    except (smtplib.SMTPException, OSError) as exc:
        # Refused, reset, timed out, TLS handshake failed, server went away.
        _drop(host)
        raise TransientSmtpError(None, f"{type(exc).__name__}: {exc}") from None
    except BaseException:
        _drop(host)
        raise
    try:
        on_accepted()
    finally:
        _close_quietly(host)


def _drop(host):
    if host is not None:
        host.close()


def _close_quietly(host):
    if host is None:
        return
    try:
        host.quit()
    except (smtplib.SMTPException, OSError):
        host.close()
