"""What one consumer process saw since its last heartbeat: outcomes, lateness, jobs in flight, SMTP.

Counting in memory is deliberate: a database write per delivered job would
double the cost of a delivery. The delivery task reports here (a lock and a
dict update), and the process's maintenance thread (tasks/maintenance.py)
drains the figures into MongoDB once per heartbeat with one write
(webapp.services.monitoring.delivery_stats). A consumer killed with SIGKILL loses at most
one heartbeat of figures; never a job's state, which lives in the job document.

The SMTP state (last successful hand-over, last connection, TLS or AUTH
error) is not drained: it is what this process last saw, carried on every
heartbeat.
"""

import smtplib
import ssl
import threading
from bisect import bisect_left
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field

from webapp.mail.errors import AUTH_CODES
from webapp.mail.errors import CLOSING_CODE
from webapp.mail.errors import SmtpError
from webapp.mail.errors import TransportSmtpError
from webapp.timeutil import as_utc
from webapp.timeutil import utcnow

# Upper bounds (seconds) of the lateness histogram's buckets; one more bucket, +Inf, follows.
# The same buckets feed the status page's percentiles and the Prometheus histogram.
LATENESS_BOUNDS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
OUTCOMES = ("sent", "failed", "retried")
# Delivery results (webapp.services.delivery.rules.DeliveryOutcome, plain strings here: monitoring sits
# above delivery but the tally is fed by the task) counted as outcomes;
# "sent" is counted at the SMTP server's 250 instead (see `observed`).
COUNTED_RESULTS = {"failed": "failed", "retry": "retried"}

# SMTP replies about the connection or the account rather than the message.
CONNECTION_CODES = {CLOSING_CODE}


def lateness_bucket(seconds):
    """Index of the histogram bucket for `seconds` (values equal to a bound fall in its bucket)."""
    return bisect_left(LATENESS_BOUNDS, seconds)


@dataclass
class MinuteFigures:
    """Outcomes and lateness of one minute, as seen by one process."""

    sent: int = 0
    failed: int = 0
    retried: int = 0
    late: list = field(default_factory=lambda: [0] * (len(LATENESS_BOUNDS) + 1))
    late_sum: float = 0.0
    late_max: float | None = None

    def add(self, other):
        """Fold `other` into this minute (used to put back figures a failed flush could not write)."""
        self.sent += other.sent
        self.failed += other.failed
        self.retried += other.retried
        self.late = [a + b for a, b in zip(self.late, other.late, strict=True)]
        self.late_sum += other.late_sum
        if other.late_max is not None:
            self.late_max = other.late_max if self.late_max is None else max(self.late_max, other.late_max)


def smtp_problem(exc):
    """(kind, text) when a failed send says the server, the TLS or the account is wrong, else None.

    kind is `auth`, `tls` or `connection`. A reply about the message or a
    recipient (4xx/5xx to MAIL, RCPT, DATA) is not a problem of the server.
    The mailer turns every smtplib or socket error into an SmtpError, raised
    while the original is being handled, so the original is its `__context__`.
    (smtplib's exceptions are OSErrors too: replies are judged by their code first.)
    """
    if not isinstance(exc, SmtpError):
        return None
    if isinstance(exc, TransportSmtpError):  # the mailer said which while opening the connection
        return exc.kind, exc.server_text()
    text = exc.describe()
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (ssl.SSLError, ssl.CertificateError, smtplib.SMTPNotSupportedError)):
            return "tls", text
        if isinstance(seen, smtplib.SMTPConnectError):  # the greeting was a refusal
            return "connection", text
        code = seen.smtp_code if isinstance(seen, smtplib.SMTPResponseException) else getattr(seen, "code", None)
        if code in AUTH_CODES:
            return "auth", text
        if code in CONNECTION_CODES:
            return "connection", text
        if code is not None:
            return None  # the server answered about this message
        if isinstance(seen, OSError):  # refused, reset, timed out, disconnected, no such host
            return "connection", text
        seen = seen.__context__
    return None


class ProcessTally:
    """The process's figures since the last flush, its jobs in flight and its view of the SMTP server."""

    def __init__(self):
        self._lock = threading.Lock()
        self._minutes = {}
        self._in_flight = set()
        self._smtp: dict = {"last_ok_at": None, "last_error": None}

    @staticmethod
    def _minute(at):
        return as_utc(at).replace(second=0, microsecond=0)

    def _figures(self, at):
        return self._minutes.setdefault(self._minute(at), MinuteFigures())

    @contextmanager
    def in_flight(self, job_id):
        """Mark `job_id` as being delivered by this process for the duration of the block."""
        job_id = str(job_id)
        with self._lock:
            self._in_flight.add(job_id)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight.discard(job_id)

    def in_flight_ids(self):
        """The jobs this process is delivering now, sorted."""
        with self._lock:
            return sorted(self._in_flight)

    def record_sent(self, send_at, accepted_at):
        """The SMTP server answered 250 at `accepted_at` for a job due at `send_at`."""
        lateness = max((as_utc(accepted_at) - as_utc(send_at)).total_seconds(), 0.0)
        with self._lock:
            figures = self._figures(accepted_at)
            figures.sent += 1
            figures.late[lateness_bucket(lateness)] += 1
            figures.late_sum += lateness
            figures.late_max = lateness if figures.late_max is None else max(figures.late_max, lateness)
            self._smtp["last_ok_at"] = accepted_at

    def record_result(self, outcome, at=None):
        """Count a delivery's result if it is a failure or a retry (other results are not figures)."""
        name = COUNTED_RESULTS.get(outcome)
        if name is None:
            return
        with self._lock:
            figures = self._figures(at or utcnow())
            setattr(figures, name, getattr(figures, name) + 1)

    def record_smtp_failure(self, exc, at=None):
        """Keep the error if it concerns the server, the TLS or the account (see `smtp_problem`)."""
        problem = smtp_problem(exc)
        if problem is None:
            return
        kind, text = problem
        with self._lock:
            self._smtp["last_error"] = {"kind": kind, "text": text[:500], "at": at or utcnow()}

    def smtp_state(self):
        """What this process last saw of the SMTP server: `last_ok_at` and `last_error` (or None)."""
        with self._lock:
            error = self._smtp["last_error"]
            return {"last_ok_at": self._smtp["last_ok_at"], "last_error": dict(error) if error else None}

    def drain(self):
        """Take the figures counted since the last drain ({minute: MinuteFigures}) and start afresh."""
        with self._lock:
            minutes, self._minutes = self._minutes, {}
        return minutes

    def restore(self, minutes):
        """Put back drained figures that could not be written; they go with the next flush."""
        with self._lock:
            for minute, figures in minutes.items():
                self._minutes.setdefault(minute, MinuteFigures()).add(figures)


# The one tally of this process (each consumer process has its own, by design: see the module doc).
TALLY = ProcessTally()


def observed(send, tally=TALLY):
    """Wrap a mailer `send(job, before_data, on_accepted)` so the tally sees the send.

    The job is listed in flight while its SMTP transaction runs; the 250 is
    counted (with its lateness) before `on_accepted` records the job as sent,
    so lateness is measured to the server's answer, not to our database
    write; an error about the server, TLS or the account is kept.
    """

    def send_and_observe(job, before_data, on_accepted):
        def accepted():
            tally.record_sent(job.send_at, utcnow())
            on_accepted()

        with tally.in_flight(job.id):
            try:
                return send(job, before_data, accepted)
            except SmtpError as exc:
                tally.record_smtp_failure(exc)
                raise

    return send_and_observe
