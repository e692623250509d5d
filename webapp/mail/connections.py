"""Each worker thread's SMTP connection, kept open and reused from one message to the next.

Opening a connection costs a TCP handshake, the greeting, EHLO, and STARTTLS and
AUTH where configured, then QUIT: more than the transaction itself on a fast
server. So each thread keeps its connection (a `ConnectionSlot`) after a
message went out and sends the next one on it, one transaction per message
(MAIL, RCPT, DATA). The rules that keep that safe (webapp.mail.mailer
applies them):

- a connection idle for MAIL_IDLE_SECONDS is not reused: it is closed (QUIT),
  by the next send or by the process's maintenance thread (`close_idle`),
  whichever comes first; MAIL_IDLE_SECONDS=0 closes it after every message;
- after a transaction that failed with a reply (a refused recipient, a 4xx or
  5xx to MAIL or DATA) the connection is reset with RSET before it is reused,
  so the next message starts from a clean state; a failed RSET, a 421, a
  network error or a transaction in doubt closes it;
- a reused connection that fails before the message data (the server closed
  it while it sat idle) is replaced by a fresh one once, for the same message.

Every slot has a lock: its thread holds it while it sends, and the
maintenance thread only closes a slot it can take without waiting.
"""

import smtplib
import threading
import time
import weakref

from flask_mail import Connection

from webapp.mail.errors import setup_failure
from webapp.mail.tls import tls_settings


class TimedConnection(Connection):
    """flask-mail's connection, opened with a socket timeout and a verifying TLS context.

    Any failure while opening (connect, greeting, EHLO, STARTTLS, AUTH) closes
    the socket and comes out as a TransportSmtpError saying which of the
    connection, the TLS or the account failed.
    """

    def __init__(self, mail, timeout):
        super().__init__(mail)
        self.timeout = timeout

    def configure_host(self):
        mail = self.mail
        where = f"{mail.server}:{mail.port}"
        host: smtplib.SMTP | None = None
        stage = "tls"
        try:
            # The context first: an unreadable MAIL_TLS_CA_FILE is a TLS setting to fix, like a bad certificate.
            context = tls_settings(mail).context() if mail.use_ssl or mail.use_tls else None
            stage = "connect"
            if mail.use_ssl:
                host = smtplib.SMTP_SSL(mail.server, mail.port, timeout=self.timeout, context=context)
            else:
                host = smtplib.SMTP(mail.server, mail.port, timeout=self.timeout)
            host.set_debuglevel(int(mail.debug))
            host.ehlo_or_helo_if_needed()
            if mail.use_tls:
                stage = "tls"
                # The context verifies the certificate and that it names MAIL_SERVER (smtplib passes it
                # as server_hostname); without one, starttls() would accept any certificate at all.
                host.starttls(context=context)
                host.ehlo()
            if mail.username and mail.password:
                stage = "auth"
                host.login(mail.username, mail.password)
            return host
        except (smtplib.SMTPException, OSError, ValueError) as exc:  # ValueError: a host name idna cannot encode
            if host is not None:
                host.close()  # no socket left open behind a failed STARTTLS or AUTH
            raise setup_failure(stage, exc, where) from exc
        except BaseException:
            if host is not None:
                host.close()
            raise


def _settings_key(mail_state, timeout):
    """What a connection was opened with: a change of any of these means a new connection."""
    return (
        mail_state.server,
        mail_state.port,
        mail_state.use_ssl,
        mail_state.use_tls,
        mail_state.username,
        mail_state.password,
        tls_settings(mail_state),
        timeout,
    )


class ConnectionSlot:
    """One thread's SMTP connection (or none), with the time it went idle."""

    def __init__(self):
        self.lock = threading.Lock()
        self.host = None
        self.key = None
        self.idle_since = 0.0
        self.opened = 0  # how many connections this slot has opened (for the tests and benchmarks)

    def reusable(self, mail_state, timeout, idle_seconds):
        """True if the open connection may carry the next message; a stale one is closed here."""
        if self.host is None:
            return False
        if self.key == _settings_key(mail_state, timeout) and time.monotonic() - self.idle_since < idle_seconds:
            return True
        self.quit()
        return False

    def open(self, mail_state, timeout):
        """Open a fresh connection (greeting, EHLO, STARTTLS and AUTH as configured)."""
        self.drop()
        self.host = TimedConnection(mail_state, timeout).configure_host()
        self.key = _settings_key(mail_state, timeout)
        self.opened += 1
        return self.host

    def reset(self):
        """After a failed transaction: RSET, so the next message starts clean; close if that fails."""
        if self.host is None:
            return
        try:
            code, _ = self.host.rset()
        except (smtplib.SMTPException, OSError):
            code = None
        if code != 250:
            self.drop()

    def finished(self, idle_seconds):
        """The transaction is over: keep the connection for the next message, or QUIT if reuse is off."""
        if idle_seconds > 0:
            self.idle_since = time.monotonic()
        else:
            self.quit()

    def quit(self):
        """Close politely (QUIT), or just close if the server is gone."""
        host, self.host = self.host, None
        if host is None:
            return
        try:
            host.quit()
        except (smtplib.SMTPException, OSError):
            host.close()

    def drop(self):
        """Close at once, without QUIT: the connection is broken or in an unknown state."""
        host, self.host = self.host, None
        if host is not None:
            host.close()

    def close_if_idle(self, idle_seconds, now):
        """Close the connection if it sat idle `idle_seconds`; skipped while its thread is sending."""
        if not self.lock.acquire(blocking=False):
            return False
        try:
            if self.host is not None and now - self.idle_since >= idle_seconds:
                self.quit()
                return True
            return False
        finally:
            self.lock.release()


class ThreadConnections:
    """The slots of this process's threads: each thread gets its own; the reaper sees them all."""

    def __init__(self):
        self._local = threading.local()
        self._lock = threading.Lock()
        self._slots: weakref.WeakSet = weakref.WeakSet()

    def slot(self):
        """This thread's slot, created on first use."""
        slot = getattr(self._local, "slot", None)
        if slot is None:
            slot = self._local.slot = ConnectionSlot()
            with self._lock:
                self._slots.add(slot)
        return slot

    def close_idle(self, idle_seconds):
        """Close every connection idle for `idle_seconds` (the maintenance thread calls this each beat)."""
        now = time.monotonic()
        with self._lock:
            slots = list(self._slots)
        return sum(1 for slot in slots if slot.close_if_idle(idle_seconds, now))

    def close_mine(self):
        """Close this thread's connection (a worker thread stopping)."""
        slot = getattr(self._local, "slot", None)
        if slot is not None:
            with slot.lock:
                slot.quit()


# The process's connections (each thread has its own: smtplib connections are not thread-safe).
CONNECTIONS = ThreadConnections()
