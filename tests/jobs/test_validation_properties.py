"""The job rules, as properties over generated input (hypothesis): webapp/services/validation.py
and webapp/mail/addresses.py, with no server.

The limits are written here as the README states them (1-998 characters, 100 KB, 50
recipients, a minute back to 10 years ahead), not imported: a rule that drifts from its
documentation fails here. Each property also holds the OpenAPI document's schema (generated
from the same models) to the rule where JSON Schema can state it.
"""

import json
import re
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import idna
import pytest
from hypothesis import HealthCheck
from hypothesis import assume
from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from webapp.mail.addresses import parse_recipient
from webapp.services.errors import ValidationFailed
from webapp.services.jobs import job_timing
from webapp.services.jobs.bulk import BulkInput
from webapp.services.jobs.job_timing import check_range
from webapp.services.recurring.inputs import ScheduleInput
from webapp.services.validation import AccountSettings
from webapp.services.validation import Credentials
from webapp.services.validation import JobInput
from webapp.services.validation import LoginInput
from webapp.services.validation import RoleInput
from webapp.services.validation import one_line_text
from webapp.services.validation import parse
from webapp.services.validation import parse_page
from webapp.timeutil import utcnow

SUBJECT_MAX = 998
BODY_MAX_BYTES = 100 * 1024
RECIPIENTS_MAX = 50
PAST_GRACE = timedelta(minutes=1)
AHEAD_MAX = timedelta(days=3653)  # ten years, leap days included
PAGE_MAX = 100_000
PER_PAGE_MAX = 100
# Control characters: C0 but TAB, DEL, C1, and the Unicode line and paragraph separators.
# RFC 2142's role mailboxes: case-insensitive, so stored lower-case (email-validator does it).
CASE_INSENSITIVE_MAILBOX_NAMES = {
    "info",
    "marketing",
    "sales",
    "support",
    "abuse",
    "noc",
    "security",
    "postmaster",
    "hostmaster",
    "usenet",
    "news",
    "webmaster",
    "www",
    "uucp",
    "ftp",
}
CONTROL = frozenset(map(chr, [*range(0x00, 0x09), *range(0x0A, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]))

PROPERTIES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DOCUMENTED = JobInput.model_json_schema()["properties"]


def job(**fields):
    return {"to": "ada@example.com", "subject": "Hello", "body": "Hi.", **fields}


def refused_fields(model, data):
    """The fields `parse` names when it refuses `data`, or None when it accepts it.

    A job is read as the API reads it: the shape, then its times in its zone and their range
    (webapp.services.jobs.job_timing, issue 8).
    """
    try:
        if model is JobInput:
            job_timing.parse_new_job(data, None, utcnow())
        else:
            parse(model, data)
    except ValidationFailed as refusal:
        return refusal.fields
    return None


def text_with_controls():
    """Text where control characters and blanks are common, not one in a thousand."""
    return st.text(alphabet=st.one_of(st.characters(), st.sampled_from(sorted(CONTROL)), st.sampled_from(" \t\u3000")))


def display_names():
    return st.text(
        alphabet=st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp"), exclude_characters="<>"), max_size=30
    )


def shown(address):
    """How an address is stored and shown: the domain lower-case in Unicode (`xn--90ais` typed is
    `бел` shown; it goes out IDNA-encoded again), the local part as typed, but RFC 2142's role
    names (`INFO`, `Postmaster`...), which are case-insensitive, lower-case."""
    local, _, domain = address.rpartition("@")
    if local.lower() in CASE_INSENSITIVE_MAILBOX_NAMES:
        local = local.lower()
    return f"{local}@{idna.decode(domain.lower())}"


def quoted(name):
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- one-line fields and the subject ---------------------------------------------------------------------


@PROPERTIES
@given(text_with_controls())
def test_one_line_text_refuses_exactly_the_control_characters_and_names_the_first(text):
    controls = [char for char in text if char in CONTROL]
    if not controls:
        assert one_line_text(text) == text
        return
    with pytest.raises(ValueError, match=f"U\\+{ord(controls[0]):04X}"):
        one_line_text(text)


@PROPERTIES
@given(st.one_of(text_with_controls(), st.integers(990, 1005).map(lambda size: "s" * size)))
@example("\t \u3000")
@example("x" * SUBJECT_MAX)
def test_a_subject_is_one_line_not_blank_up_to_998_characters_and_the_document_says_so(subject):
    unicode = not any(0xD800 <= ord(char) <= 0xDFFF for char in subject)  # no lone surrogate: UTF-8 can carry it
    valid = 1 <= len(subject) <= SUBJECT_MAX and not (set(subject) & CONTROL) and subject.strip() != "" and unicode
    fields = refused_fields(JobInput, job(subject=subject))
    assert (fields is None) == valid, fields
    if not valid:
        assert set(fields) == {"subject"}
    if unicode:
        assert Draft202012Validator(DOCUMENTED["subject"]).is_valid(subject) == valid


# --- recipients ------------------------------------------------------------------------------------------


@PROPERTIES
@given(st.emails())
def test_any_address_is_accepted_and_reads_back_as_itself(address):
    recipient = parse_recipient(address)
    assert recipient.display_name == ""
    assert parse_recipient(str(recipient)) == recipient
    assert str(recipient) == shown(address)


@PROPERTIES
@given(display_names(), st.emails(), st.booleans())
def test_a_display_name_is_kept_and_the_stored_form_reads_back_the_same(name, address, with_quotes):
    assume(with_quotes or not set(name) & set('"\\()<>@,:;.[]'))  # unquoted, a name is plain words
    typed = f"{quoted(name) if with_quotes else name} <{address}>"
    recipient = parse_recipient(typed)
    assert recipient.display_name == name.strip()
    assert recipient.address == parse_recipient(address).address
    assert parse_recipient(str(recipient)) == recipient


@PROPERTIES
@given(
    st.lists(
        st.tuples(st.emails(), st.booleans(), st.booleans(), st.one_of(st.none(), display_names())),
        min_size=1,
        max_size=12,
    )
)
def test_the_same_mailbox_goes_out_once_the_first_spelling_kept(picks):
    """Domains compare ignoring case and IDNA spelling, display names not at all; local parts as
    typed (A@x and a@x are two mailboxes) but for RFC 2142's role names (INFO@x and info@x are one)."""
    typed, mailboxes = [], []
    for address, shout_domain, shout_local, name in picks:
        local, _, domain = address.rpartition("@")
        address = f"{local.upper() if shout_local else local}@{domain.upper() if shout_domain else domain}"
        typed.append(address if name is None else f"{quoted(name)} <{address}>")
        mailboxes.append(shown(address))
    expected, seen = [], set()
    for recipient, mailbox in zip(typed, mailboxes, strict=True):
        if mailbox not in seen:
            seen.add(mailbox)
            expected.append(str(parse_recipient(recipient)))
    assert parse(JobInput, job(to=typed)).to == expected


@PROPERTIES
@given(st.lists(st.text(max_size=5), max_size=60))
def test_recipients_are_counted_before_any_is_read(to):
    """0 or more than 50 is refused for the number alone, even when every one is garbage."""
    fields = refused_fields(JobInput, job(to=to))
    if not to or len(to) > RECIPIENTS_MAX:
        assert fields == {"to": "add at least one recipient" if not to else "at most 50 recipients"}
    else:
        assert fields and all(name.startswith("to.") for name in fields)  # each is read, none is an address
    items = DOCUMENTED["to"]["anyOf"][1]
    assert (items["minItems"], items["maxItems"]) == (1, RECIPIENTS_MAX)


@PROPERTIES
@given(display_names(), st.emails(), st.integers(0, 340))
def test_a_recipient_is_at_most_320_characters_as_stored(name, address, padding):
    typed = f"{quoted(name + 'x' * padding)} <{address}>"
    fields = refused_fields(JobInput, job(to=[typed]))
    stored = str(parse_recipient(typed))
    assert (fields is None) == (len(stored) <= 320 and len(typed) <= 320), (len(typed), len(stored), fields)


# --- body ------------------------------------------------------------------------------------------------


@PROPERTIES
@given(st.sampled_from(["a", "é", "€", "😀"]), st.integers(-4, 4))
def test_a_body_is_at_most_100_kb_of_utf8_whatever_the_characters(char, offset):
    count = BODY_MAX_BYTES // len(char.encode()) + offset
    body = char * count
    fields = refused_fields(JobInput, job(body=body))
    assert (fields is None) == (len(body.encode()) <= BODY_MAX_BYTES), (char, count)
    if fields:
        assert fields == {"body": "must be at most 100 KB"}


# --- send_at ---------------------------------------------------------------------------------------------


@PROPERTIES
@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    st.timedeltas(min_value=-timedelta(days=2), max_value=timedelta(days=3700)),
)
@example(datetime(2026, 1, 1, tzinfo=UTC), -PAST_GRACE)
@example(datetime(2026, 1, 1, tzinfo=UTC), -PAST_GRACE - timedelta(microseconds=1))
@example(datetime(2026, 1, 1, tzinfo=UTC), AHEAD_MAX)
@example(datetime(2026, 1, 1, tzinfo=UTC), AHEAD_MAX + timedelta(microseconds=1))
def test_send_at_runs_from_a_minute_back_to_ten_years_ahead(now, delta):
    # The rule production applies (job_timing.check_range, called for every send_at and expires_at).
    moment = now + delta
    errors = {}
    check_range(moment, now, errors, "send_at")
    if -PAST_GRACE <= delta <= AHEAD_MAX:
        assert errors == {}
    else:
        expected = "more than a minute in the past" if delta < timedelta(0) else "more than 10 years ahead"
        assert expected in errors["send_at"]


@PROPERTIES
@given(
    st.timedeltas(min_value=timedelta(minutes=2), max_value=AHEAD_MAX - timedelta(days=1)),
    st.integers(-14 * 60, 14 * 60),
    st.booleans(),
)
def test_send_at_in_any_offset_is_the_same_instant_in_utc(ahead, offset_minutes, spell_z):
    moment = (datetime.now(UTC) + ahead).replace(microsecond=0)
    zone = timezone(timedelta(minutes=offset_minutes))
    typed = moment.astimezone(zone).isoformat()
    if spell_z and offset_minutes == 0:
        typed = typed.replace("+00:00", "Z")
    _job, read = job_timing.parse_new_job(job(send_at=typed), None, utcnow())
    assert read.send_at == moment


@PROPERTIES
@given(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.one_of(st.none(), st.integers(-14 * 60, 14 * 60)),
)
@example(datetime(1, 1, 1), 60)
@example(datetime(9999, 12, 31, 23, 59), -60)
def test_any_send_at_is_either_taken_or_refused_with_a_reason_never_an_error(wall, offset_minutes):
    """With an offset, an instant; without, a wall time read in the job's zone (issue 8; UTC here)."""
    typed = (
        wall.isoformat()
        if offset_minutes is None
        else wall.replace(tzinfo=timezone(timedelta(minutes=offset_minutes))).isoformat()
    )
    fields = refused_fields(JobInput, job(send_at=typed))
    if fields is not None:
        assert fields == {"send_at": fields["send_at"]}
        assert fields["send_at"] in ("is more than a minute in the past", "is more than 10 years ahead")


# --- any input at all ------------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
MODELS = {
    Credentials: ("email", "password"),
    LoginInput: ("email", "password"),
    RoleInput: ("role",),
    JobInput: ("to", "subject", "body", "send_at", "timezone", "windows", "expires_at"),
    ScheduleInput: (
        "to",
        "subject",
        "body",
        "cron",
        "timezone",
        "windows",
        "starts_at",
        "until",
        "max_runs",
        "catch_up",
    ),
    AccountSettings: ("timezone", "windows"),
    BulkInput: ("action", "ids", "filter", "send_at", "timezone"),
}


@PROPERTIES
@given(
    st.sampled_from(sorted(MODELS, key=lambda model: model.__name__)).flatmap(
        lambda model: st.tuples(
            st.just(model), st.one_of(JSON, st.fixed_dictionaries({}, optional={name: JSON for name in MODELS[model]}))
        )
    )
)
def test_any_json_is_either_valid_or_refused_field_by_field(pair):
    """Bad input gets a message per field, never an exception a view would turn into a 500."""
    model, data = pair
    fields = refused_fields(model, data)
    if fields is not None:
        assert fields and all(
            isinstance(name, str) and isinstance(message, str) and message for name, message in fields.items()
        )
        json.dumps(fields)


@PROPERTIES
@given(
    st.one_of(st.none(), st.text(max_size=12), st.integers(-10, 200_000).map(str)),
    st.one_of(st.none(), st.text(max_size=12), st.integers(-10, 200).map(str)),
)
def test_pagination_is_read_within_bounds_or_refused_per_field(page, per_page):
    args = {name: value for name, value in (("page", page), ("per_page", per_page)) if value is not None}
    try:
        got_page, got_per_page = parse_page(args)
    except ValidationFailed as refusal:
        assert set(refusal.fields) <= {"page", "per_page"} and refusal.fields
        return
    assert 1 <= got_page <= PAGE_MAX and 1 <= got_per_page <= PER_PAGE_MAX
    for value, got, default in ((page, got_page, 1), (per_page, got_per_page, 20)):
        if value in (None, ""):
            assert got == default
        elif re.fullmatch(r"\+?[0-9]+(\.0*)?", value):
            assert got == int(float(value))


# --- the document is not stricter than the rules -------------------------------------------------------


@PROPERTIES
@given(
    st.one_of(st.emails(), st.lists(st.emails(), min_size=1, max_size=5)),
    st.text(alphabet=st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=80),
    st.text(max_size=200),
    st.timedeltas(min_value=timedelta(minutes=5), max_value=timedelta(days=3000)),
)
def test_what_the_rules_accept_the_document_accepts(to, subject, body, ahead):
    data = job(to=to, subject=subject, body=body, send_at=(datetime.now(UTC) + ahead).isoformat())
    assume(refused_fields(JobInput, data) is None)
    validator = Draft202012Validator(JobInput.model_json_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER)
    assert not [error.message for error in validator.iter_errors(data)]
