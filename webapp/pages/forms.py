"""The schedule form → the API's `JobInput` or `ScheduleInput`, so a page and the API give the same errors.

The form differs from the JSON only in shape: recipients in one text box, the times as
`datetime-local` values in the zone picked (the browser's by default), the windows as text
(`mon-fri 09:00-17:00`), and a recurrence (cron) that makes it a schedule.
"""

import re
from dataclasses import dataclass

from webapp.services.errors import ValidationFailed
from webapp.services.jobs import job_timing
from webapp.services.recurring.inputs import ScheduleInput
from webapp.services.scheduling import timing
from webapp.services.validation import parse

FIELDS = (
    "to",
    "subject",
    "body",
    "send_at",
    "timezone",
    "zone",
    "windows",
    "expires_at",
    "cron",
    "catch_up",
    "until",
    "max_runs",
)
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


def form_zone(values, account_zone):
    """The zone the form's times are read in: the picker's, else the browser's, else the account's."""
    return values["zone"] or values["timezone"] or account_zone


@dataclass
class ParsedForm:
    """A valid form: a one-off job (`job_input`, `timing`) or a repeating one (`schedule_input`)."""

    zone: str
    job_input: object = None
    timing: object = None
    schedule_input: object = None


def _api_fields(values, zone, recipients, errors):
    """The form's values in the API's shape (the schedule's fields only with a recurrence)."""
    # Browsers post textarea line breaks as CRLF; the API's bodies use LF.
    data = {
        "to": recipients,
        "subject": values["subject"],
        "body": values["body"].replace("\r\n", "\n"),
        "timezone": zone,
    }
    try:
        windows = parse_windows_text(values["windows"])
    except ValueError as exc:
        errors["windows"] = str(exc)
    else:
        if windows is not None:
            data["windows"] = windows
    send_at, expires_at = values["send_at"].strip(), values["expires_at"].strip()
    if not values["cron"].strip():
        data.update({name: value for name, value in (("send_at", send_at), ("expires_at", expires_at)) if value})
        return data
    data.update(cron=values["cron"].strip(), catch_up=values["catch_up"] or "latest")
    data.update({name: value for name, value in (("starts_at", send_at), ("until", values["until"].strip())) if value})
    if expires_at:
        errors["expires_at"] = "is for a one-off email; a repeating one has its catch-up rule instead"
    if values["max_runs"].strip():
        try:
            data["max_runs"] = int(values["max_runs"])
        except ValueError:
            errors["max_runs"] = "must be a whole number"
    return data


def parse_job_form(values, user, now):
    """Validate the form with the API's rules; a ParsedForm, or ValidationFailed with per-input messages.

    Times are wall times in the chosen zone, read by the API's DST rule. With a recurrence
    (`cron`), the send time is the schedule's start; the schedule's own range checks run when it
    is created (see `input_errors` for their names).
    """
    zone = form_zone(values, job_timing.account_zone(user))
    recipients = split_recipients(values["to"])
    errors = {}
    data = _api_fields(values, zone, recipients, errors)
    parsed = ParsedForm(zone=zone)
    try:
        if "cron" in data:
            parsed.schedule_input = parse(ScheduleInput, data)
        else:
            parsed.job_input, parsed.timing = job_timing.parse_new_job(data, user, now)
    except ValidationFailed as exc:
        errors = {**input_errors(exc.fields, recipients), **errors}
    if errors:
        raise ValidationFailed("Some fields are not valid.", errors)
    return parsed


# The API's field names that the form shows under another input.
_INPUT_FOR = {"timezone": "zone", "starts_at": "send_at"}


def input_errors(fields, recipients=()):
    """The API's errors by form input: `to.2` and `windows.0.start` on their box, naming the address
    at fault; `timezone` on the zone picker, `starts_at` on the send time."""
    errors = {}
    for name, message in fields.items():
        head, _, index = name.partition(".")
        if head == "to" and index.isdigit():
            address = recipients[int(index)] if int(index) < len(recipients) else ""
            message = f"{address!r}: {message}"
        elif head == "windows" and index:
            number, _, part = index.partition(".")
            message = f"window {int(number) + 1 if number.isdigit() else number}{' ' + part if part else ''} {message}"
        errors.setdefault(_INPUT_FOR.get(head, head), message)
    return errors


_DAY_RANGE = re.compile(r"([a-z]{3})(?:-([a-z]{3}))?")
_WINDOW_TEXT = re.compile(r"(?P<days>.+?)\s+(?P<start>\d{1,2}:\d{2})\s*[-–]\s*(?P<end>\d{1,2}:\d{2})")
_DAY_WORDS = {"daily": "mon-sun", "every day": "mon-sun", "weekdays": "mon-fri", "weekends": "sat-sun"}


def parse_windows_text(text):
    """The windows box → the API's windows: None when empty (the account's), [] for "any".

    One window per line or `;`: days (mon, mon-fri, sat,sun, weekdays, weekends, daily) then
    hours, e.g. `mon-fri 09:00-17:00; sat 10:00-12:00`. Hours are checked by the API's rules.
    """
    text = (text or "").strip().lower()
    if not text:
        return None
    if text in ("any", "any time", "anytime"):
        return []
    windows = []
    for part in filter(None, (piece.strip() for piece in re.split(r"[;\n]+", text))):
        match = _WINDOW_TEXT.fullmatch(part)
        if not match:
            raise ValueError(f"{part!r} is not days and hours, e.g. mon-fri 09:00-17:00")
        windows.append(
            {"days": _days(match["days"].strip()), "start": _hhmm(match["start"]), "end": _hhmm(match["end"])}
        )
    return windows


def _days(text):
    days = []
    for item in filter(None, (piece.strip() for piece in _DAY_WORDS.get(text, text).split(","))):
        match = _DAY_RANGE.fullmatch(_DAY_WORDS.get(item, item))
        if not match or match[1] not in timing.DAYS or (match[2] and match[2] not in timing.DAYS):
            raise ValueError(f"{item!r} is not a day or a range of days (mon, mon-fri, weekends)")
        first = timing.DAYS.index(match[1])
        last = timing.DAYS.index(match[2]) if match[2] else first
        span = (last - first) % 7
        days.extend(timing.DAYS[(first + step) % 7] for step in range(span + 1))
    return days


def _hhmm(text):
    hours, _, minutes = text.partition(":")
    return f"{int(hours):02d}:{minutes}"
