"""Fuzz the whole API from its own document: no 5xx, and every answer as the document says.

schemathesis reads GET /api/openapi.json and, for every operation in it, sends requests built
from the schemas: the edges of every bound, missing fields and wrong types (its coverage
phase), methods the document does not list, and random valid and invalid requests (its
fuzzing phase). Every answer is checked against the document: no 5xx, a documented status,
the documented content type, a body that matches the response schema (the response models),
invalid requests refused with a 4xx, valid ones not refused with a 422 (where JSON Schema can
state the whole rule, see CONFIG), and no answer without the bearer token a route requires.
It runs in-process (WSGI) on the suite's `app`, against the real FerretDB and Redis.

Valid requests carry a user's bearer token (an admin's on /api/admin). Most valid requests
with a path id aim at real documents (seeded jobs in every status, another user's job, a
spare user, seeded schedules; a PATCH always does, with a realistic change most of the time)
and half of the valid new jobs and schedules get realistic recipients, send times and crons,
so answers built from real documents are checked too, not only 404s and 422s. Bounded for CI by
FUZZ_MAX_EXAMPLES per operation; the requests sent are printed and kept, by route and status,
in test-results/fuzz-api.json.
"""

import json
import os
import re
import time
import uuid
from collections import Counter
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REPORT = PROJECT_ROOT / "test-results" / "fuzz-api.json"
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "25"))
# A client address of the fuzzer's own, so that its sign-in and sign-up buckets are its own.
FUZZ_CLIENT_ADDRESS = "192.0.2.77"
PASSWORD = "correct-horse-9"
CONFIG = {
    # Tokens come from FuzzWorld.headers_for(), not from generated Authorization headers.
    "generation": {"max-examples": MAX_EXAMPLES, "database": "none", "with-security-parameters": False},
    # "Valid requests are accepted" is checked where JSON Schema can state the whole rule. An
    # address (email-validator's syntax) or a send_at (a range measured from now) cannot be, so
    # a value the schema admits may be refused, rightly: not checked on these two operations.
    # Their rules are proved by tests/jobs/test_validation_properties.py and tests/test_api_*.py.
    # 413 (a body over MAX_CONTENT_LENGTH, documented on every body) refuses invalid data too.
    "checks": {
        "negative_data_rejection": {
            "expected-statuses": ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
        }
    },
    # Scheduling (issue 8): a zone's name, a window's start differing from its end, a cron that
    # ever fires, ids that are ObjectIds: rules JSON Schema does not state either.
    "operations": [
        {"include-path": path, "include-method": method, "checks": {"positive_data_acceptance": {"enabled": False}}}
        for method, path in (
            ("POST", "/api/auth/register"),
            ("POST", "/api/users/jobs"),
            ("PATCH", "/api/users/jobs/{job_id}"),
            ("PATCH", "/api/users/me"),
            ("POST", "/api/users/schedules"),
            ("PATCH", "/api/users/schedules/{schedule_id}"),
            ("POST", "/api/admin/bulk/jobs"),
        )
    ],
}


def document_app():
    """An app to read the document from at collection time (the requests go to the suite's `app`).

    Building it touches no server: the database connection is made on first use.
    """
    from webapp.app import create_app
    from webapp.config import load_config

    return create_app(load_config("testing"))


schema = schemathesis.openapi.from_wsgi(
    "/api/openapi.json", document_app(), config=schemathesis.Config.from_dict(CONFIG)
)
REQUESTS = Counter()
STATUSES = Counter()
WORLD = {}  # the running test's FuzzWorld, for the hook
RUN_STARTED = datetime.now(UTC).replace(second=0, microsecond=0, tzinfo=None)
SEEDED_STATUSES = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "IN_DOUBT")  # FuzzWorld's jobs, in order
# Actions that change a job in another status than PENDING: the status they may change.
CHANGEABLE = {"POST /api/admin/jobs/{job_id}/close": "IN_DOUBT", "POST /api/admin/jobs/{job_id}/retry": "FAILED"}


def recipients():
    """Recipients the API takes: a plain address, or one with a display name."""
    address = st.emails().filter(lambda text: len(text) <= 254)
    name = (
        st.text(
            st.characters(codec="utf-8", exclude_categories=("C",), exclude_characters='<>"\\'), min_size=1, max_size=20
        )
        .map(str.strip)
        .filter(bool)
    )
    named = st.tuples(name, address).map(lambda pair: f'"{pair[0]}" <{pair[1]}>')
    return st.one_of(address, named)


def send_times():
    """send_at values inside the documented range (measured from now), in any offset."""
    # The same bounds for the whole run: bounds that moved with the clock made Hypothesis's replay
    # of an example draw differently (FlakyStrategyDefinition). An hour of margin either way.
    moments = st.datetimes(
        min_value=RUN_STARTED + timedelta(hours=1), max_value=RUN_STARTED + timedelta(days=3000), timezones=st.just(UTC)
    )
    offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
        lambda minutes: timezone(timedelta(minutes=minutes))
    )
    return st.tuples(moments, offsets).map(lambda pair: pair[0].astimezone(pair[1]).isoformat())


def realistic_job_fields():
    """`to` and `send_at` as a person would send them (the rest stays as generated)."""
    to = st.one_of(recipients(), st.lists(recipients(), min_size=1, max_size=5))
    return st.fixed_dictionaries({"to": to, "send_at": st.one_of(st.none(), send_times())})


def realistic_schedule_fields():
    """A schedule as a person would make one: recipients, a cron that fires, a zone, no bounds."""
    to = st.one_of(recipients(), st.lists(recipients(), min_size=1, max_size=3))
    crons = st.sampled_from(["0 9 * * 1-5", "*/15 * * * *", "30 2 * * *", "0 0 29 2 *", "0 0 31 * *", "5 4 * * sun"])
    zones = st.sampled_from([None, "UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])
    return st.fixed_dictionaries(
        {
            "to": to,
            "cron": crons,
            "timezone": zones,
            "windows": st.none(),
            "starts_at": st.none(),
            "until": st.none(),
            "max_runs": st.none(),
        }
    )


@schema.hook
def flatmap_case(context, case):
    """Valid cases: aim a path id at a real document, give a new job or schedule real recipients
    (and a cron that fires), a PATCH a realistic change, sign in with a real account's password."""
    if case.meta is not None and case.meta.generation.mode.is_negative:
        return st.just(case)
    parameters = case.path_parameters or {}
    world = WORLD["current"]
    name = next((name for name in ("job_id", "user_id", "schedule_id") if name in parameters), None)
    if name is not None:
        known = {"job_id": world.job_ids, "user_id": [world.spare_user_id], "schedule_id": world.schedule_ids}[name]
        if case.operation.label == "PATCH /api/users/jobs/{job_id}":
            known = world.job_ids[:1]  # only a PENDING job can be rescheduled: aim at it
        elif case.operation.label in CHANGEABLE:  # the job this action may change comes first
            first = world.job_ids[SEEDED_STATUSES.index(CHANGEABLE[case.operation.label])]
            known = [first, *(job_id for job_id in known if job_id != first)]
        # A change is aimed at a real document always (a made-up id only ever gives a 404, which
        # the other cases and the coverage phase send anyway); others mostly. The job the action
        # may change (PENDING, or as CHANGEABLE says) is first: Hypothesis draws the first choice
        # more often than the others.
        aim = st.sampled_from(known) if case.operation.method.upper() == "PATCH" else st.sampled_from([*known, None])
    else:
        aim = st.just(None)
    fields = st.none()
    if case.operation.label == "POST /api/users/jobs" and isinstance(case.body, dict):
        fields = st.one_of(st.none(), realistic_job_fields())
    elif case.operation.label == "POST /api/users/schedules" and isinstance(case.body, dict):
        fields = st.one_of(st.none(), realistic_schedule_fields())
    # A PATCH's realistic change comes first: Hypothesis draws the first branch of one_of more
    # often, and a generated body is mostly refused (a zone, a cron, a send time it cannot know).
    elif case.operation.label == "PATCH /api/users/jobs/{job_id}" and isinstance(case.body, dict):
        fields = st.one_of(
            st.fixed_dictionaries({"send_at": send_times()}, optional={"to": recipients()}).map(
                lambda chosen: {"body": None, **chosen}
            ),
            st.none(),
        )
    elif case.operation.label == "PATCH /api/users/schedules/{schedule_id}" and isinstance(case.body, dict):
        fields = st.one_of(
            st.sampled_from(
                [{"status": "paused"}, {"status": "active"}, {"cron": "15 8 * * mon"}, {"subject": "Changed"}]
            ),
            st.none(),
        )
    elif case.operation.label == "POST /api/auth/login" and isinstance(case.body, dict):
        fields = st.just({"email": world.user_email, "password": PASSWORD})

    def realistic(pair):
        value, chosen = pair
        if value is not None:
            case.path_parameters = {**parameters, name: value}
        if chosen is not None:
            # A PATCH's realistic body replaces the generated one (its fields each change something).
            if case.operation.method.upper() == "PATCH":
                case.body = {key: item for key, item in chosen.items() if item is not None}
            else:
                case.body = {**case.body, **chosen}
        return case

    return st.tuples(aim, fields).map(realistic)


class FuzzWorld:
    """The accounts and documents one operation's run works with, and the requests it sent."""

    def __init__(self, app, client):
        self.app = app
        self.requests = Counter()
        self.statuses = Counter()
        self.user_email, self.user_id = self._account("fuzz", "user")
        _email, admin_id = self._account("fuzz-admin", "admin")
        _email, self.spare_user_id = self._account("fuzz-spare", "user")
        self.user_token = self._token(self.user_id)
        self.admin_token = self._token(admin_id)
        self.job_ids = self._seed_jobs(client)
        self.schedule_ids = self._seed_schedules(client)

    @staticmethod
    def _account(prefix, role):
        """An account made directly (the fuzzer itself signs up through the API)."""
        from webapp.models import User

        user = User(email=f"{prefix}-{uuid.uuid4().hex[:8]}@example.com", password_hash=password_hash(), role=role)
        user.save()
        return user.email, str(user.id)

    def _token(self, user_id):
        from flask_jwt_extended import create_access_token

        with self.app.app_context():
            return create_access_token(identity=user_id)

    @staticmethod
    def bearer(token):
        return {"Authorization": f"Bearer {token}"}

    def _seed_jobs(self, client):
        """A job in every status, with an attempt, and one of another user's (which must stay a 404)."""
        from webapp.models import Job
        from webapp.models.job import Attempt

        later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        ids = []
        for status in SEEDED_STATUSES:
            payload = {
                "to": ["Ada Lovelace <ada@example.com>", "bob@bücher.example"],
                "subject": f"Seeded {status}",
                "body": "Seeded by the fuzz test.",
                "send_at": later,
            }
            response = client.post("/api/users/jobs", json=payload, headers=self.bearer(self.user_token))
            assert response.status_code == 201, response.json
            now = datetime.now(UTC)
            attempt = Attempt(
                worker="fuzz-worker", started_at=now, finished_at=now, outcome="retry", error="421 try again later"
            )
            Job.objects(id=response.json["id"]).update_one(
                set__status=status,
                set__attempts=1,
                push__attempts_log=attempt,
                set__last_error="421 try again later",
                set__sent_at=now if status == "COMPLETED" else None,
            )
            ids.append(response.json["id"])
        theirs = client.post(
            "/api/users/jobs",
            json={"to": "x@example.com", "subject": "Theirs", "body": "b", "send_at": later},
            headers=self.bearer(self._token(self.spare_user_id)),
        )
        ids.append(theirs.json["id"])
        return ids

    def _seed_schedules(self, client):
        """Two schedules of the user and one of another user's (which must stay a 404)."""
        ids = []
        for cron in ("0 9 * * 1", "30 2 * * *"):
            response = client.post(
                "/api/users/schedules",
                headers=self.bearer(self.user_token),
                json={
                    "to": "ada@example.com",
                    "subject": f"Seeded {cron}",
                    "body": "b",
                    "cron": cron,
                    "timezone": "Europe/Berlin",
                },
            )
            assert response.status_code == 201, response.json
            ids.append(response.json["id"])
        theirs = client.post(
            "/api/users/schedules",
            headers=self.bearer(self._token(self.spare_user_id)),
            json={"to": "x@example.com", "subject": "Theirs", "body": "b", "cron": "0 9 * * 1"},
        )
        return [*ids, theirs.json["id"]]

    def headers_for(self, case):
        """The token a rightful caller of this operation sends."""
        if not case.operation.definition.raw.get("security"):
            return {}
        if case.operation.path == "/api/auth/logout":
            return self.bearer(self._token(self.user_id))  # a logout revokes the token it is sent with
        if case.operation.path.startswith("/api/admin/"):
            return self.bearer(self.admin_token)
        return self.bearer(self.user_token)

    def count(self, environ, status):
        """Count one request by the route it reached (`METHOD /rule`), and its status."""
        method = environ["REQUEST_METHOD"]
        adapter = self.app.url_map.bind_to_environ(environ)
        try:
            rule, _arguments = adapter.match(method=method, return_rule=True)
        except MethodNotAllowed as refused:  # a method the route does not take: still that route's
            rule, _arguments = adapter.match(method=refused.valid_methods[0], return_rule=True)
        except HTTPException:
            rule = None
        route = f"{method} {rule.rule if rule else '(no such route)'}"
        self.requests[route] += 1
        self.statuses[f"{route} -> {status.split()[0]}"] += 1


_HASH = {}


def password_hash():
    """One Argon2 hash of PASSWORD for every seeded account (hashing is slow on purpose)."""
    if "value" not in _HASH:
        from webapp.services.accounts.passwords import hash_password

        _HASH["value"] = hash_password(PASSWORD)
    return _HASH["value"]


@pytest.fixture()
def fuzz_world(request, app, client, monkeypatch):
    """Accounts and seeded jobs for one operation's run; counts every request the fuzzer sends."""
    from webapp.services.jobs import change_marks

    # A change mark noted by a request (POST /api/users/jobs) is written at once, in the request:
    # the flusher thread would write it a moment later, while Hypothesis draws the next case, and
    # pymongo draws each command's request id from the `random` module, which Hypothesis takes
    # for a strategy using `random` (HypothesisDeprecationWarning, an error here).
    monkeypatch.setattr(change_marks, "note", lambda owner_id: change_marks.bump([owner_id]))
    world = WORLD["current"] = FuzzWorld(app, client)
    inner = app.wsgi_app

    def counting(environ, start_response):
        environ["REMOTE_ADDR"] = FUZZ_CLIENT_ADDRESS

        def start(status, headers, *args):
            world.count(environ, status)
            return start_response(status, headers, *args)

        return inner(environ, start)

    app.wsgi_app = counting
    failed_before = request.session.testsfailed
    yield world
    app.wsgi_app = inner
    leave_no_mail_in_flight()
    REQUESTS.update(world.requests)
    STATUSES.update(world.statuses)
    if request.session.testsfailed > failed_before:
        return  # the failure says it all
    # A run that never got past the door (every case filtered out, every token refused) would
    # prove nothing: an operation behind a token must have answered a 2xx at least once.
    method, _, path = request.node.operation_label.partition(" ")
    route = f"{method} {re.sub(r'{([^}]+)}', r'<\1>', path)}"
    assert world.requests[route], f"{route}: no request"
    if schema[path][method].definition.raw.get("security"):
        assert any(world.statuses[f"{route} -> {status}"] for status in ("200", "201")), (
            f"{route} never answered a 2xx in {world.requests[route]} requests"
        )


def leave_no_mail_in_flight():
    """Undo a pause the fuzzer made, drop its schedules and pending jobs, wait out any send a consumer began."""
    from webapp.models import Job
    from webapp.models import Schedule
    from webapp.services.delivery import pause

    if pause.read_pause() is not None:
        pause.resume("tests/api/test_fuzz_api.py")
    Schedule.objects.delete()  # no consumer makes more of their occurrences
    Job.objects(status="PENDING").delete()
    deadline = time.monotonic() + 30
    while Job.objects(status="RUNNING", lease_token__ne=None).count() and time.monotonic() < deadline:
        time.sleep(0.2)


@pytest.fixture(scope="module", autouse=True)
def fuzz_report():
    """Print and keep what the whole run sent, once every operation has been fuzzed."""
    started = time.monotonic()
    yield
    total = sum(REQUESTS.values())
    by_status = Counter()
    for key, count in STATUSES.items():
        by_status[key.rpartition(" -> ")[2]] += count
    summary = {
        "max_examples": MAX_EXAMPLES,
        "requests": total,
        "seconds": round(time.monotonic() - started, 1),
        "statuses": dict(sorted(by_status.items())),
        "by_route": dict(sorted(REQUESTS.items())),
        "by_route_and_status": dict(sorted(STATUSES.items())),
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"\nfuzz: {total} requests in {summary['seconds']} s, statuses {summary['statuses']} "
        f"({REPORT.relative_to(PROJECT_ROOT)})"
    )


@schema.parametrize()
# fuzz_world is made once per operation on purpose: all of its examples share those accounts.
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_operation_answers_as_documented(case, app, fuzz_world):
    case.call_and_validate(app=app, headers=fuzz_world.headers_for(case))
