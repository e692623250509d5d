"""The schedule form → the API's `JobInput`, so a page and the API give the same errors.

The form differs from the JSON only in shape: recipients in one text box,
the send time as a `datetime-local` value in the browser's zone.
"""

import re

from webapp.errors import ValidationFailed
from webapp.localtime import is_valid_zone
from webapp.localtime import local_to_utc
from webapp.services.validation import TOO_EARLY
from webapp.services.validation import TOO_LATE
from webapp.services.validation import JobInput
from webapp.services.validation import parse
from webapp.timeutil import OutOfRange
from webapp.timeutil import isoformat_z

FIELDS = ("to", "subject", "body", "send_at", "timezone")
# The recipients box, in pieces: a quoted string, an <address>, a word, a hard separator
# (comma, semicolon, line break) or spaces. No nested repetition: linear in the input.
_PIECE = re.compile(r'"(?:[^"\\]|\\.)*"?|<[^<>]*>?|[^\s,;<>"]+|[,;\r\n]|[ \t\f\v]+')


def split_recipients(text):
    """The recipients typed in the box, each as the API would take it.

    They are separated by commas, semicolons or white space, except that words
    (or a quoted string) followed by `<address>` are one recipient with its
    display name: `Ada Lovelace <ada@example.com>`, `"Lovelace, Ada" <ada@example.com>`.
    """
    recipients = []
    name = []  # words that may be the display name of an <address> to come

    def flush():
        recipients.extend(name)
        name.clear()

    for piece in _PIECE.findall(text):
        if piece.isspace() and piece not in "\r\n":
            continue
        if piece in (",", ";", "\r", "\n"):
            flush()
        elif piece.startswith("<"):
            recipients.append(" ".join([*name, piece]))
            name.clear()
        elif piece.startswith('"') or "@" not in piece:
            name.append(piece)
        else:
            flush()
            recipients.append(piece)
    flush()
    return recipients


def form_values(form):
    """What the user typed, as strings, kept to show the form again on an error."""
    return {name: form.get(name, "") for name in FIELDS}


def zone_for(values, account_zone):
    """The browser's zone from the form, or the account's when the page ran no script."""
    return values["timezone"] or account_zone


def parse_job_form(values, account_zone):
    """Validate the form; return (JobInput, zone) or raise ValidationFailed with per-input messages.

    The zone returned is None when it is not a real one (it only matters with a send time).
    """
    zone = zone_for(values, account_zone)
    recipients = split_recipients(values["to"])
    # Browsers post textarea line breaks as CRLF; the API's bodies use LF.
    data = {"to": recipients, "subject": values["subject"], "body": values["body"].replace("\r\n", "\n")}
    errors = {}
    if values["send_at"].strip():
        if not is_valid_zone(zone):
            errors["send_at"] = f"cannot be read: your browser reported an unknown time zone {zone!r}"
        else:
            try:
                data["send_at"] = isoformat_z(local_to_utc(values["send_at"].strip(), zone))
            except OutOfRange as exc:
                errors["send_at"] = TOO_LATE if exc.too_late else TOO_EARLY
            except ValueError as exc:
                errors["send_at"] = str(exc)
    try:
        job_input = parse(JobInput, data)
    except ValidationFailed as exc:
        errors = {**_by_input(exc.fields, recipients), **errors}
    if errors:
        raise ValidationFailed("Some fields are not valid.", errors)
    return job_input, zone if is_valid_zone(zone) else None


def _by_input(fields, recipients):
    """Point `to.2`-style errors at the recipients box, naming the address at fault."""
    errors = {}
    for name, message in fields.items():
        head, _, index = name.partition(".")
        if head == "to" and index.isdigit():
            address = recipients[int(index)] if int(index) < len(recipients) else ""
            message = f"{address!r}: {message}"
        errors.setdefault(head, message)
    return errors
