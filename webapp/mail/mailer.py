"""One SMTP transaction per job, on flask-mail's settings, with the gaps it leaves closed.

flask-mail holds the SMTP settings and opens the connection, but its
`Connection` has no timeout (a stalled server hangs a worker forever) and
ignores recipients the server refused, and its `Message` sends an ASCII body
as 7bit whatever its line length (a 5,000-character line is refused: "500 Line
too long"), mangles a non-ASCII local part into an invalid address, and puts
the recipients in a set. So the message is built here with the standard
library's `email` package: quoted-printable or base64 wherever a line would
pass 78 octets or the text is not ASCII, headers RFC 2047-encoded, IDN domains
IDNA-encoded; and `send_email` drives the transaction step by step: MAIL, RCPT
for every recipient (any refusal aborts before any copy is sent), then
`before_data()` (the caller's last check before the in-doubt window), then
DATA, then `on_accepted()` as soon as the server's 250 is read, before
anything else that could fail or stall. The connection is kept for the
thread's next message (webapp.mail.connections says when it is not).

A non-ASCII local part (`josé@example.com`) needs SMTPUTF8 (RFC 6531): the
transaction asks for it, with UTF-8 headers, when the server offers it, and
otherwise fails at once (permanently: another try reaches the same server).
Errors come out as `TransientSmtpError` (try again later),
`PermanentSmtpError` (give up) or `TransportSmtpError` (the connection, its
TLS or the account failed, not the message: the job waits without using an
attempt), keeping the server's code and text (webapp.mail.errors).
A network failure after the message data started to go out is flagged
`in_doubt`: the server may have accepted the message without us hearing it.
"""

import re
import smtplib
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from email.utils import parseaddr

from webapp.mail.addresses import parse_recipient
from webapp.mail.addresses import unique_mailboxes
from webapp.mail.connections import CONNECTIONS
from webapp.mail.errors import AUTH_CODES
from webapp.mail.errors import PermanentSmtpError
from webapp.mail.errors import SmtpError
from webapp.mail.errors import TransientSmtpError
from webapp.mail.errors import TransportSmtpError
from webapp.mail.errors import classify
from webapp.mail.errors import reply_text
from webapp.timeutil import utcnow

# CRLF, lines folded at 78, and a 7bit-clean body: qp or base64 when a line is long or not ASCII.
PLAIN_POLICY = SMTP.clone(cte_type="7bit")
# The same for an SMTPUTF8 transaction, whose headers carry UTF-8 as is (RFC 6532).
UTF8_POLICY = PLAIN_POLICY.clone(utf8=True)
# Characters a 7bit body must not carry raw (NUL, VT, ...): they force quoted-printable.
_RAW_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class Envelope:
    """Who the message is from and to, as SMTP commands and as headers need them."""

    def __init__(self, sender, recipients):
        name, address = sender if isinstance(sender, tuple) else parseaddr(sender)
        local, _, domain = address.rpartition("@")
        if not local or not domain:
            raise PermanentSmtpError(None, f"the sender address {sender!r} (MAIL_DEFAULT_SENDER) is not valid")
        try:
            ascii_domain = domain if domain.isascii() else domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise PermanentSmtpError(None, f"the sender domain {domain!r} (MAIL_DEFAULT_SENDER) is not valid") from None
        self.sender_name = name
        self.sender_local = local
        self.sender_domain = domain
        self.sender_ascii_domain = ascii_domain
        self.sender = f"{local}@{ascii_domain}"
        try:
            self.recipients = unique_mailboxes(parse_recipient(text) for text in recipients)
        except ValueError as exc:
            raise PermanentSmtpError(None, f"a recipient {exc}") from None
        self.needs_smtputf8 = not local.isascii() or any(r.needs_smtputf8 for r in self.recipients)

    @property
    def rcpt_to(self):
        return [recipient.envelope_address for recipient in self.recipients]

    def header_addresses(self):
        """(From, To) as header Address objects: IDNA domains unless the session speaks UTF-8."""
        utf8 = self.needs_smtputf8
        sender = Address(self.sender_name, self.sender_local, self.sender_domain if utf8 else self.sender_ascii_domain)
        to = [Address(r.display_name, r.local_part, r.domain if utf8 else r.ascii_domain) for r in self.recipients]
        return sender, to


def build_message(job, envelope):
    """The email for `job` as bytes, with its stable Message-ID; any body can be carried.

    A job the rules should have refused (stored by other means) raises
    PermanentSmtpError: it cannot be sent, now or later.
    """
    message = EmailMessage(policy=UTF8_POLICY if envelope.needs_smtputf8 else PLAIN_POLICY)
    try:
        sender, to = envelope.header_addresses()
        message["Subject"] = job.subject
        message["From"] = sender
        message["To"] = to
        message["Date"] = format_datetime(utcnow())
        message["Message-ID"] = job.message_id
        message.set_content(job.body, cte="quoted-printable" if _RAW_UNSAFE.search(job.body) else None)
        return message.as_bytes()
    except (ValueError, TypeError, IndexError) as exc:  # UnicodeError is a ValueError
        raise PermanentSmtpError(None, f"the message cannot be built: {type(exc).__name__}: {exc}") from None


def _mail_options(host, envelope):
    """MAIL FROM parameters; SMTPUTF8 when an address needs it, and a permanent failure if not offered."""
    if not envelope.needs_smtputf8:
        return []
    if not host.has_extn("smtputf8"):
        wide = [r.address for r in envelope.recipients if r.needs_smtputf8] or [envelope.sender]
        raise PermanentSmtpError(
            None,
            f"the mail server does not offer SMTPUTF8, which the non-ASCII address "
            f"{wide[0]} needs; it cannot be delivered through this server",
        )
    return ["SMTPUTF8", "BODY=8BITMIME"] if host.has_extn("8bitmime") else ["SMTPUTF8"]


def _transaction(host, envelope, payload, before_data):
    """MAIL, RCPT for every recipient, `before_data()`, DATA: raise SmtpError on a refusal.

    The caller resets or closes the connection after a failure (see `_transact`).
    """
    host.ehlo_or_helo_if_needed()
    code, response = host.mail(envelope.sender, _mail_options(host, envelope))
    if code in AUTH_CODES:  # "530 authentication required": the account, not the message
        raise TransportSmtpError("auth", code, reply_text(response))
    if code != 250:
        raise classify(code, response)
    refused = {}
    for recipient in envelope.rcpt_to:
        code, response = host.rcpt(recipient)
        if code not in (250, 251):
            refused[recipient] = (code, response)
    if refused:
        # One permanent refusal fails the job; otherwise the whole job waits and retries.
        worst = max(refused.items(), key=lambda item: item[1][0])
        address, (code, response) = worst
        if code in AUTH_CODES:
            raise TransportSmtpError("auth", code, f"{reply_text(response)} (recipient {address})")
        raise classify(code, f"{reply_text(response)} (recipient {address})")
    before_data()
    try:
        code, response = host.data(payload)
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        # The data went out (or started to) and no reply came back.
        raise TransientSmtpError(None, f"{type(exc).__name__}: {exc} (no reply to DATA)", in_doubt=True) from None
    if code != 250:
        raise classify(code, response)


class _StaleConnection(Exception):
    """A reused connection failed before the message data: the server dropped it while it sat idle."""


class _DataGate:
    """`before_data`, remembering whether it was called (after that, no failure may be retried)."""

    def __init__(self, before_data):
        self.before_data = before_data
        self.called = False

    def __call__(self):
        self.called = True
        self.before_data()


def _transact(slot, mail_state, timeout, envelope, payload, gate, reused):
    """One transaction on the slot's connection (a fresh one unless `reused`).

    Raises SmtpError for the caller, or _StaleConnection when a reused
    connection failed before the data: a network error or a 421 (the server
    closing) there says the connection is dead, not that the message is refused.
    """
    try:
        host = slot.host if reused else slot.open(mail_state, timeout)
        _transaction(host, envelope, payload, gate)
    except smtplib.SMTPResponseException as exc:
        # A reply, even to DATA, is a definite answer: the message was not taken.
        error = classify(exc.smtp_code, exc.smtp_error)
        _after_refusal(slot, error, reused and not gate.called)
        raise error from None
    except SmtpError as exc:
        if exc.in_doubt:
            slot.drop()  # the connection is broken: QUIT would only wait for another timeout
        else:
            _after_refusal(slot, exc, reused and not gate.called)
        raise
    except (smtplib.SMTPException, OSError) as exc:
        # Refused, reset, timed out, TLS handshake failed, server went away.
        slot.drop()
        if reused and not gate.called:
            raise _StaleConnection(f"{type(exc).__name__}: {exc}") from exc
        raise TransientSmtpError(None, f"{type(exc).__name__}: {exc}") from None
    except BaseException:
        slot.drop()
        raise


def _after_refusal(slot, error, may_be_stale):
    """A reply refused the transaction: reset the connection for the next message (RSET), or close it."""
    if error.code == 421:  # the server is closing the connection
        slot.drop()
        if may_be_stale:
            raise _StaleConnection(error.describe()) from None
        return
    slot.reset()


def send_email(mail_state, job, timeout, before_data, on_accepted, idle_seconds=0.0):
    """Deliver `job` through the app's flask-mail settings; raise SmtpError on failure.

    `before_data` runs after every recipient was accepted and before the
    message data is sent; if it raises, nothing is sent. `on_accepted` runs
    right after the server's 250 to DATA, before anything else that could fail
    or stall: from then on the job is delivered. Exceptions from either
    callback pass through unchanged.

    With `idle_seconds` above 0 the thread's connection is kept open and reused
    for the next message sent within that time (webapp.mail.connections);
    a reused connection that turns out dead before the data is replaced once.
    """
    envelope = Envelope(mail_state.default_sender, job.to)
    payload = build_message(job, envelope)
    gate = _DataGate(before_data)
    slot = CONNECTIONS.slot()
    with slot.lock:
        reused = idle_seconds > 0 and slot.reusable(mail_state, timeout, idle_seconds)
        try:
            try:
                _transact(slot, mail_state, timeout, envelope, payload, gate, reused)
            except _StaleConnection:
                _transact(slot, mail_state, timeout, envelope, payload, gate, reused=False)
            on_accepted()
        finally:
            slot.finished(idle_seconds)  # a connection still open is clean: kept for the next message
