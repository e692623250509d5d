"""What an SMTP failure means for a job: try again later, give up, or wait for the server.

Three kinds of failure, each its own class, all keeping the server's code and text:

- `PermanentSmtpError`: a 5xx for the message or a recipient; retrying will not help.
- `TransientSmtpError`: a 4xx, or a network failure during the transaction;
  the attempt counts and the job retries with backoff until `max_attempts`.
- `TransportSmtpError` (a transient kind): the connection to the server, its
  TLS or our account there failed, before any message was offered: refused,
  reset or timed out at connect, a 421 greeting, a TLS handshake or
  certificate that does not verify, 530/534/535/538 at AUTH (or "530
  authentication required" at MAIL). That says nothing about the message, so
  it uses none of the job's attempts: the job waits with backoff until the
  server or the settings are fixed (webapp.services.delivery.rules).
"""

import smtplib
import ssl

# SMTP replies about the account rather than the message (RFC 4954): 530 authentication required,
# 534 mechanism too weak, 535 credentials invalid, 538 encryption required for the mechanism.
AUTH_CODES = frozenset({530, 534, 535, 538})
# 421: the server is closing the channel; at connect (greeting, EHLO, STARTTLS, AUTH) it is the server's state.
CLOSING_CODE = 421


def reply_text(response):
    """An SMTP reply's text as str (smtplib hands out bytes)."""
    return response.decode("utf-8", "replace") if isinstance(response, bytes) else str(response)


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

    def server_text(self):
        """The server's code and words, or the network error, as they came."""
        return f"{self.code} {self.text}" if self.code else self.text

    def describe(self):
        """The text `last_error` and the attempt history keep."""
        return self.server_text()


class TransientSmtpError(SmtpError):
    """4xx, connection refused or reset, timeout: try again later (the attempt counts)."""


class PermanentSmtpError(SmtpError):
    """5xx for the message or a recipient: retrying will not help."""


class TransportSmtpError(TransientSmtpError):
    """The connection, its TLS or the account failed, not the message: the job waits, no attempt used.

    `kind` is `connection`, `tls` or `auth` (the status page's `smtp.last_error.kind`);
    `describe()` leads with it: `tls: certificate verify failed: …`, `auth: 535 …`.
    """

    def __init__(self, kind, code, text):
        self.kind = kind
        super().__init__(code, text)

    def describe(self):
        return f"{self.kind}: {self.server_text()}"


def classify(code, response):
    """Turn an SMTP reply to the transaction into the matching error class."""
    error = PermanentSmtpError if 500 <= code < 600 else TransientSmtpError
    return error(code, reply_text(response))


def setup_failure(stage, exc, where):
    """The TransportSmtpError for `exc`, raised while opening the connection at `stage`.

    `stage` is `connect` (TCP, greeting, EHLO; the TLS handshake too with
    MAIL_USE_SSL), `tls` (the CA file, STARTTLS) or `auth`; `where` names the
    server for the text (`host:port`).
    """
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TransportSmtpError(
            "tls",
            None,
            f"certificate verify failed: {exc.verify_message} ({where}; MAIL_TLS_CA_FILE names a private CA)",
        )
    if isinstance(exc, ssl.SSLError) or stage == "tls":
        return TransportSmtpError("tls", *_code_and_text(exc, where))
    code, text = _code_and_text(exc, where)
    if stage == "auth" and code != CLOSING_CODE and not _is_network(exc):
        # 535 wrong password, 534, 530, 454 temporary failure, or no AUTH offered at all.
        return TransportSmtpError("auth", code, text)
    return TransportSmtpError("connection", code, text)


def _is_network(exc):
    return isinstance(exc, (smtplib.SMTPServerDisconnected, ConnectionError, TimeoutError)) or (
        isinstance(exc, OSError) and not isinstance(exc, smtplib.SMTPException)
    )


def _code_and_text(exc, where):
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code, reply_text(exc.smtp_error)
    return None, f"{type(exc).__name__}: {exc} ({where})"
