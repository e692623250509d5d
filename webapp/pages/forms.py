"""The schedule form → the API's `JobInput`, so a page and the API give the same errors.

The form differs from the JSON only in shape: recipients in one text box,
the send time as a `datetime-local` value in the browser's zone.
"""

import re

from webapp.errors import ValidationFailed
from webapp.localtime import is_valid_zone
from webapp.localtime import local_to_utc
from webapp.services.validation import JobInput
from webapp.services.validation import parse
from webapp.timeutil import isoformat_z

FIELDS = ("to", "subject", "body", "send_at", "timezone")
_SEPARATORS = re.compile(r"[\s,;]+")


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
    recipients = [address for address in _SEPARATORS.split(values["to"]) if address]
    # Browsers post textarea line breaks as CRLF; the API's bodies use LF.
    data = {"to": recipients, "subject": values["subject"], "body": values["body"].replace("\r\n", "\n")}
    errors = {}
    if values["send_at"].strip():
        if not is_valid_zone(zone):
            errors["send_at"] = f"cannot be read: your browser reported an unknown time zone {zone!r}"
        else:
            try:
                data["send_at"] = isoformat_z(local_to_utc(values["send_at"].strip(), zone))
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
