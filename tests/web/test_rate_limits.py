"""Rate limits as an attacker meets them: the `make run` shape, several processes and hosts, restarts.

Each stack is two "hosts" (two gunicorn masters with the project's gunicorn.conf.py, two
gevent workers each) on the suite's FerretDB, and every request is a fresh connection,
alternating between the hosts: a limit counted per process or per host would let through
several times the configured number. Every test runs on the embedded shape (no
REDIS_URL: the counters are in MongoDB, the queue in SQLite); the first also with Redis.

The stacks trust one proxy (TRUSTED_PROXIES=1), so each test is a different client by
its X-Forwarded-For; the last test runs a host that trusts none and shows the header is
then ignored.
"""

import os
import re
import uuid
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
import requests

from tests.support.gunicorn import GunicornServer
from tests.support.gunicorn import server_env

LOGIN_LIMIT = 5
SIGNUP_LIMIT = 3
JOB_CREATE_LIMIT = 4
PASSWORD = "correct-horse-9"
# The worker's pid in each access-log line, to see that more than one process answered.
ACCESS_LOG = ["--access-logformat", 'pid=%(p)s "%(r)s" %(s)s']
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


@dataclass
class Stack:
    hosts: list

    def host(self, n):
        """The n-th request's host: they alternate."""
        return self.hosts[n % len(self.hosts)]

    def restart(self):
        for host in self.hosts:
            host.stop()
        for host in self.hosts:
            host.start()

    def pids(self, path):
        """Which worker processes answered requests for `path`."""
        return {
            pid
            for host in self.hosts
            for pid, logged in re.findall(r'pid=<(\d+)> "\w+ (\S+)', host.log())
            if logged == path
        }


def stack_env(storage, workdir, **overrides):
    settings = {
        "WEB_CONCURRENCY": 2,
        "TRUSTED_PROXIES": 1,
        "LOGIN_RATE_LIMIT": f"{LOGIN_LIMIT} per hour",
        "SIGNUP_RATE_LIMIT": f"{SIGNUP_LIMIT} per hour",
        "JOB_CREATE_RATE_LIMIT": f"{JOB_CREATE_LIMIT} per hour",
    }
    if storage == "mongodb":  # the embedded shape: nothing but the database to share counters in
        settings.update(REDIS_URL=None, HUEY_SQLITE_PATH=workdir / "huey.db")
    settings.update(overrides)
    return server_env(os.environ, **settings)


@pytest.fixture(scope="module")
def stacks(app, tmp_path_factory):
    """`stacks(storage)`: the two-host stack counting in "mongodb" or "redis", started on first use."""
    started = {}

    def get(storage):
        if storage not in started:
            logs = tmp_path_factory.mktemp(f"limits-{storage}")
            env = stack_env(storage, logs)
            started[storage] = Stack(
                [GunicornServer(env, logs / f"host-{n}.log", extra_args=ACCESS_LOG) for n in range(2)]
            )
            for host in started[storage].hosts:
                host.start()
        return started[storage]

    yield get
    for stack in started.values():
        for host in stack.hosts:
            host.stop()


@pytest.fixture()
def stack(stacks):
    """The embedded shape (no Redis): the one `make run` starts."""
    return stacks("mongodb")


def client_ip():
    """A fresh client address (a fresh set of per-IP buckets), as the proxy reports it."""
    n = uuid.uuid4().int
    return f"10.{n % 250}.{n // 250 % 250}.{n // 62500 % 250 + 1}"


def tomorrow():
    return datetime.now(UTC) + timedelta(days=1)


def new_email():
    return f"user-{uuid.uuid4().hex[:10]}@example.com"


def post(host, path, ip, **kwargs):
    """One request on a fresh connection, from `ip` behind the trusted proxy."""
    headers = {"X-Forwarded-For": ip, "Connection": "close", **kwargs.pop("headers", {})}
    return requests.post(host.url + path, headers=headers, timeout=15, **kwargs)


def register(host, ip, email):
    return post(host, "/api/auth/register", ip, json={"email": email, "password": PASSWORD})


def login(host, ip, email, password=PASSWORD):
    return post(host, "/api/auth/login", ip, json={"email": email, "password": password})


def assert_json_429(response, code="too_many_requests"):
    assert response.status_code == 429
    assert response.json()["error"]["code"] == code and response.json()["error"]["message"]
    assert 1 <= int(response.headers["Retry-After"]) <= 3600


def accounts_for(stack, count):
    """`count` accounts, each registered from its own address (sign-ups are limited per IP)."""
    emails = [new_email() for _ in range(count)]
    for email in emails:
        assert register(stack.host(0), client_ip(), email).status_code == 201
    return emails


@pytest.mark.parametrize("storage", ["mongodb", "redis"])
def test_exactly_the_configured_sign_ins_pass_across_workers_and_hosts_and_after_a_restart(stacks, storage):
    stack = stacks(storage)
    [email] = accounts_for(stack, 1)
    ip = client_ip()
    answers = [login(stack.host(n), ip, email) for n in range(LOGIN_LIMIT + 4)]

    assert [answer.status_code for answer in answers] == [200] * LOGIN_LIMIT + [429] * 4
    assert_json_429(answers[-1])
    assert len(stack.pids("/api/auth/login")) >= 2  # more than one process counted

    stack.restart()
    again = login(stack.host(1), ip, email)
    assert_json_429(again)  # a restart forgets nothing
    assert login(stack.host(0), client_ip(), email).status_code == 200  # another client is not affected


def test_sign_up_has_its_own_limit_separate_from_sign_in(stack):
    ip = client_ip()
    emails = [new_email() for _ in range(SIGNUP_LIMIT + 1)]
    answers = [register(stack.host(n), ip, email) for n, email in enumerate(emails)]
    assert [answer.status_code for answer in answers] == [201] * SIGNUP_LIMIT + [429]
    assert_json_429(answers[-1])
    assert "sign-ups" in answers[-1].json()["error"]["message"]
    # The office that filled its sign-ups still signs in: a separate bucket.
    assert login(stack.host(1), ip, emails[0]).status_code == 200

    # And failed sign-ins do not use up an address's sign-ups.
    other = client_ip()
    failures = [login(stack.host(n), other, emails[0], "wrong-password").status_code for n in range(LOGIN_LIMIT + 1)]
    assert failures == [401] * LOGIN_LIMIT + [429]
    assert register(stack.host(0), other, new_email()).status_code == 201


def signed_in_page(host, ip, email):
    """A browser session on `host` (cookies kept), signed in through the page; returns (session, token)."""
    browser = requests.Session()
    browser.headers.update({"X-Forwarded-For": ip})
    token = _CSRF_META.search(browser.get(host.url + "/login", timeout=15).text).group(1)
    signed_in = browser.post(
        host.url + "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token},
        timeout=15,
        allow_redirects=False,
    )
    assert signed_in.status_code == 302, signed_in.text
    return browser, _CSRF_META.search(browser.get(host.url + "/jobs", timeout=15).text).group(1)


def test_scheduling_is_limited_per_user_on_the_api_and_the_page_together(stack):
    alice, bob = accounts_for(stack, 2)
    ip = client_ip()
    headers = {"Authorization": "Bearer " + login(stack.host(0), ip, alice).json()["access_token"]}
    # A day ahead: nothing here is meant to be sent by a consumer some other test started.
    job = {"to": "reader@example.com", "subject": "limited", "body": "b", "send_at": tomorrow().isoformat()}
    created = [
        post(stack.host(n), "/api/users/jobs", ip, json=job, headers=headers).status_code
        for n in range(JOB_CREATE_LIMIT - 1)
    ]
    browser, token = signed_in_page(stack.host(1), ip, alice)
    form = {
        "to": "reader@example.com",
        "subject": "from the page",
        "body": "b",
        "send_at": tomorrow().strftime("%Y-%m-%dT%H:%M"),
        "timezone": "UTC",
    }
    page = browser.post(
        stack.host(1).url + "/jobs", data=form, timeout=15, headers={"HX-Request": "true", "X-CSRFToken": token}
    )
    assert created + [page.status_code] == [201] * JOB_CREATE_LIMIT  # one bucket for both

    assert_json_429(post(stack.host(0), "/api/users/jobs", ip, json=job, headers=headers))
    refused = browser.post(
        stack.host(1).url + "/jobs", data=form, timeout=15, headers={"HX-Request": "true", "X-CSRFToken": token}
    )
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 3600
    # The form comes back with what was typed and the reason inline (htmx swaps 429s, see base.html).
    assert refused.text.lstrip().startswith('<form id="job-form"')
    assert "Too many emails scheduled in a short time. Try again in" in refused.text
    assert 'value="from the page"' in refused.text

    # Per user, not per address: Bob, at the same address, schedules.
    bob_headers = {"Authorization": "Bearer " + login(stack.host(1), ip, bob).json()["access_token"]}
    assert post(stack.host(0), "/api/users/jobs", ip, json=job, headers=bob_headers).status_code == 201


def test_trusted_proxy_addresses_are_the_client_addresses_in_buckets_and_the_audit_log(stack):
    from webapp.services import audit

    [email] = accounts_for(stack, 1)
    clients = [client_ip() for _ in range(3)]
    # Each client behind the proxy has its own per-IP bucket (the account's bucket only counts failures).
    for ip in clients:
        assert [login(stack.host(n), ip, email).status_code for n in range(LOGIN_LIMIT)] == [200] * LOGIN_LIMIT
    entries, _ = audit.list(actor=email, action="sign_in", per_page=100)
    assert {entry.ip for entry in entries} == set(clients)


@pytest.fixture(scope="module")
def untrusting_host(app, tmp_path_factory):
    """One host (two workers) with TRUSTED_PROXIES unset: X-Forwarded-For is anyone's to write."""
    workdir = tmp_path_factory.mktemp("untrusting")
    host = GunicornServer(stack_env("mongodb", workdir, TRUSTED_PROXIES=None), workdir / "host.log").start()
    yield host
    host.stop()


def test_without_trusted_proxies_a_forged_forwarded_for_buys_nothing(untrusting_host):
    from webapp.services import audit

    email = new_email()
    assert register(untrusting_host, client_ip(), email).status_code == 201
    # Every attempt claims another address; the connection's (127.0.0.1) is the one that counts.
    answers = [login(untrusting_host, client_ip(), email, "wrong-password") for _ in range(LOGIN_LIMIT + 2)]
    assert [answer.status_code for answer in answers] == [401] * LOGIN_LIMIT + [429] * 2
    assert_json_429(answers[-1])
    entries, _ = audit.list(actor=email, action="sign_in", per_page=100)
    assert len(entries) == LOGIN_LIMIT and {entry.ip for entry in entries} == {"127.0.0.1"}
