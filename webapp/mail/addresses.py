"""Recipients: what a user may type, how it is stored, and how it goes on the wire.

A recipient is a mailbox (`ada@example.com`), optionally with a display name
(`Ada Lovelace <ada@example.com>` or `"Lovelace, Ada" <ada@example.com>`),
which is kept and delivered in the `To:` header. The address is checked with
email-validator (syntax only, no DNS): its domain is stored lower-cased in
Unicode (`bücher.example`), and goes out IDNA-encoded (`xn--bcher-kva.example`)
in the envelope and, on a plain SMTP session, in the headers. A non-ASCII
local part (`josé@…`) can only travel over SMTPUTF8 (RFC 6531), which the
mailer asks the server for.

Two recipients are the same mailbox when their local parts are equal and their
domains are equal ignoring case and IDNA spelling (RFC 5321 §2.4: the domain
is case-insensitive, the local part belongs to the receiving host and may be
case-sensitive, so `Ada@x.com` and `ada@x.com` are kept as two).
"""

import re
from dataclasses import dataclass

from email_validator import EmailNotValidError
from email_validator import validate_email

# The longest recipient we keep, display name included (the job model's limit).
MAX_RECIPIENT_CHARS = 320
_NAMED = re.compile(r"(?P<name>[^<>]*?)\s*<(?P<address>[^<>]*)>", re.DOTALL)
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)
# RFC 5322 specials: a display name holding one of these is written quoted.
_SPECIALS = re.compile(r'[][\\()<>@,:;".]')


@dataclass(frozen=True)
class Recipient:
    """One validated recipient: its display name ("" if none) and its mailbox."""

    display_name: str
    local_part: str
    domain: str
    ascii_domain: str

    @property
    def address(self):
        """The mailbox as shown to people (Unicode domain)."""
        return f"{self.local_part}@{self.domain}"

    @property
    def envelope_address(self):
        """The mailbox for MAIL FROM / RCPT TO: IDNA domain, local part as given."""
        return f"{self.local_part}@{self.ascii_domain}"

    @property
    def needs_smtputf8(self):
        """True when the local part is not ASCII: only an SMTPUTF8 session can carry it."""
        return not self.local_part.isascii()

    @property
    def mailbox_key(self):
        """What makes two recipients the same mailbox (see the module docstring)."""
        return self.local_part, self.ascii_domain.lower()

    def __str__(self):
        """The stored form, `Name <address>` or the bare address; parse_recipient reads it back."""
        if not self.display_name:
            return self.address
        name = self.display_name
        if _SPECIALS.search(name):
            name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{name} <{self.address}>"


def _display_name(raw):
    raw = raw.strip()
    quoted = _QUOTED.fullmatch(raw)
    if quoted:
        return re.sub(r"\\(.)", r"\1", quoted.group(1), flags=re.DOTALL).strip()
    if '"' in raw:
        raise ValueError('has a display name with an unbalanced quote; write it as "Name" <address>')
    return raw


def parse_recipient(text):
    """Read one recipient (`address` or `Name <address>`); raise ValueError saying what is wrong.

    The caller has already refused control characters and over-long input.
    """
    text = text.strip()
    named = _NAMED.fullmatch(text)
    name, address = (_display_name(named.group("name")), named.group("address").strip()) if named else ("", text)
    try:
        checked = validate_email(address, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise ValueError(f"is not a valid email address: {exc}") from None
    return Recipient(name, checked.local_part, checked.domain, checked.ascii_domain)


def unique_mailboxes(recipients):
    """Keep the first of each mailbox, in the order given (one copy per mailbox)."""
    seen = set()
    kept = []
    for recipient in recipients:
        if recipient.mailbox_key not in seen:
            seen.add(recipient.mailbox_key)
            kept.append(recipient)
    return kept
