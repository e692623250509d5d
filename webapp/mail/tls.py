"""How the SMTP server's certificate is checked: the TLS context for STARTTLS and SMTP over TLS.

`smtplib.SMTP.starttls()` without a context verifies nothing: a man in the
middle could present any certificate and read the AUTH password. So every
TLS connection to the mail server (MAIL_USE_TLS, MAIL_USE_SSL) gets a context
from `ssl.create_default_context()`: the certificate must chain to a trusted
CA and name the host in MAIL_SERVER. The trusted CAs are the system's, or
the ones in MAIL_TLS_CA_FILE (a private CA) instead. MAIL_TLS_VERIFY=false
turns the checks off, on purpose only, and every process says so when it
starts (`warn_if_unverified`).
"""

import logging
import os
import ssl
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)

_contexts: dict = {}
_contexts_lock = threading.Lock()


@dataclass(frozen=True)
class TlsSettings:
    """MAIL_TLS_VERIFY and MAIL_TLS_CA_FILE: whether and against which CAs the server is verified."""

    verify: bool = True
    ca_file: str | None = None

    @classmethod
    def from_config(cls, config):
        return cls(verify=config.get("MAIL_TLS_VERIFY", True), ca_file=config.get("MAIL_TLS_CA_FILE"))

    def context(self):
        """The SSLContext for a connection with these settings (built once per CA file version).

        A CA file that cannot be read raises OSError or ssl.SSLError here, at
        connection time, so the mailer reports it as a TLS problem of the
        settings (the jobs wait) rather than of a message.
        """
        # The file's mtime is in the key: a CA file replaced on disk is read again.
        stamp = os.stat(self.ca_file).st_mtime_ns if self.ca_file else None
        key = (self.verify, self.ca_file, stamp)
        with _contexts_lock:
            context = _contexts.get(key)
            if context is None:
                context = _contexts[key] = self._build()
        return context

    def _build(self):
        if self.ca_file:
            context = ssl.create_default_context(cafile=self.ca_file)
        else:
            context = ssl.create_default_context()
        if not self.verify:
            # The explicit opt-out: encrypted, but anyone on the path can be the server.
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


# What a mail state without TLS settings (built by other means) gets: the safe default.
VERIFIED = TlsSettings()


def tls_settings(mail_state):
    """The TLS settings carried by a flask-mail state (webapp.extensions.Mail), else the verified default."""
    return getattr(mail_state, "tls", None) or VERIFIED


def warn_if_unverified(config, logger=log):
    """Log a warning when MAIL_TLS_VERIFY=false; True if it did (called as each process starts)."""
    if config.get("MAIL_TLS_VERIFY", True):
        return False
    if config.get("MAIL_USE_TLS") or config.get("MAIL_USE_SSL"):
        logger.warning(
            "MAIL_TLS_VERIFY=false: the certificate of the SMTP server %s:%s is NOT verified; "
            "anyone on the network path can pose as it and read MAIL_PASSWORD and every message. "
            "Give a private CA with MAIL_TLS_CA_FILE instead.",
            config.get("MAIL_SERVER"),
            config.get("MAIL_PORT"),
        )
    else:
        logger.warning(
            "MAIL_TLS_VERIFY=false has no effect: neither MAIL_USE_TLS nor MAIL_USE_SSL is set, "
            "so the SMTP connection is not encrypted at all"
        )
    return True
