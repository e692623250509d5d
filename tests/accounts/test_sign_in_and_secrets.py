"""The doors: production secrets, slow clients, sign-out, and sign-in throttling that cannot lock the owner out.

Real parts throughout: the compose CLI (`docker compose config` needs no engine), the
app under real gunicorn with the project's gunicorn.conf.py, raw sockets, Redis for the
throttling buckets, FerretDB for the accounts.
"""

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

import jwt as pyjwt
import pytest
import requests

from tests.support.gunicorn import GunicornServer
from tests.support.gunicorn import server_env
from tests.support.pages import PASSWORD
from tests.support.pages import PageClient

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROD_SECRET_KEY = secrets.token_hex(32)
PROD_JWT_SECRET_KEY = secrets.token_hex(32)
# Far more than the old shape could hold (2 sync workers) and than 2 gthread workers x 4 threads.
SLOW_CLIENTS = 24
HEADER_TIMEOUT = 2  # WEB_KEEPALIVE for the server under test
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def stored_jobs():
    from webapp.models import Job

    return list(Job.objects.order_by("created_at"))


def tomorrow():
    """A send time for the form (UTC zone), a day ahead."""
    return (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")


def job_form(subject):
    return {"to": "reader@example.com", "subject": subject, "body": "Body", "send_at": tomorrow(), "timezone": "UTC"}


# --- 7. compose runs the production config and refuses to start without real secrets -------------


def compose_command():
    """`docker compose` (or `docker-compose`, or $COMPOSE_BIN) if it runs here, else None."""
    explicit = os.environ.get("COMPOSE_BIN")
    for command in ([explicit],) if explicit else (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            continue
        if subprocess.run([*command, "version"], capture_output=True, timeout=30).returncode == 0:
            return command
    return None


def compose_config(tmp_path, env_file_text):
    """`docker compose config` of the project's compose file, with only `env_file_text` as .env."""
    command = compose_command()
    if command is None:
        pytest.skip(
            "no compose CLI here (docker compose, docker-compose or $COMPOSE_BIN); "
            "build one with `go build` of github.com/docker/compose/v2/cmd"
        )
    env_file = tmp_path / "compose.env"
    env_file.write_text(env_file_text)
    env = {key: value for key, value in os.environ.items() if key not in ("SECRET_KEY", "JWT_SECRET_KEY")}
    return subprocess.run(
        [
            *command,
            "--project-directory",
            str(PROJECT_ROOT),
            "-f",
            str(PROJECT_ROOT / "docker-compose.yml"),
            "--env-file",
            str(env_file),
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_compose_refuses_to_start_until_both_secrets_are_given(tmp_path):
    # With both missing, compose names one of them (which one first varies from run to run).
    missing = compose_config(tmp_path, "")
    assert missing.returncode != 0
    assert re.search(r"required variable (JWT_)?SECRET_KEY is missing a value", missing.stderr), missing.stderr
    assert "openssl rand -hex 32" in missing.stderr  # the message says how

    no_session_key = compose_config(tmp_path, f"JWT_SECRET_KEY={PROD_JWT_SECRET_KEY}\n")
    assert no_session_key.returncode != 0
    assert "required variable SECRET_KEY is missing a value" in no_session_key.stderr

    no_token_key = compose_config(tmp_path, f"SECRET_KEY={PROD_SECRET_KEY}\n")
    assert no_token_key.returncode != 0
    assert "required variable JWT_SECRET_KEY is missing a value" in no_token_key.stderr

    # `cp .env.example .env` is not enough: it leaves the secrets unset.
    copied = compose_config(tmp_path, (PROJECT_ROOT / ".env.example").read_text())
    assert copied.returncode != 0
    assert re.search(r"required variable (JWT_)?SECRET_KEY is missing a value", copied.stderr), copied.stderr


def test_compose_runs_the_production_config_with_the_given_secrets(tmp_path):
    given = compose_config(tmp_path, f"SECRET_KEY={PROD_SECRET_KEY}\nJWT_SECRET_KEY={PROD_JWT_SECRET_KEY}\n")
    assert given.returncode == 0, given.stderr
    services = json.loads(given.stdout)["services"]
    for name in ("web", "worker"):
        environment = services[name]["environment"]
        assert environment["APP_ENV"] == "production", name
        assert environment["SECRET_KEY"] == PROD_SECRET_KEY, name
        assert environment["JWT_SECRET_KEY"] == PROD_JWT_SECRET_KEY, name
    # The web service runs the same gunicorn config as `make run`.
    assert services["web"]["command"] == ["gunicorn", "--config", "gunicorn.conf.py", "wsgi:app"]


@pytest.fixture(scope="module")
def production_server(app, tmp_path_factory):
    """The app as compose runs it: APP_ENV=production with real secrets, under gunicorn.conf.py."""
    env = server_env(
        os.environ,
        APP_ENV="production",
        SECRET_KEY=PROD_SECRET_KEY,
        JWT_SECRET_KEY=PROD_JWT_SECRET_KEY,
        WEB_CONCURRENCY=2,
        WEB_KEEPALIVE=HEADER_TIMEOUT,
    )
    server = GunicornServer(env, tmp_path_factory.mktemp("gunicorn") / "production.log").start()
    yield server
    server.stop()


def bearer(user_id, key):
    """An access token for `user_id` signed with `key`, shaped like flask-jwt-extended's."""
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "jti": uuid.uuid4().hex,
        "type": "access",
        "fresh": False,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    return {"Authorization": "Bearer " + pyjwt.encode(claims, key, algorithm="HS256")}


def test_production_refuses_a_token_signed_with_the_public_dev_key(app, production_server):
    from webapp.config import DEV_JWT_SECRET_KEY
    from webapp.services.accounts import users

    admin = users.create_or_promote_admin(f"admin-{uuid.uuid4().hex[:8]}@example.com", PASSWORD)
    url = f"{production_server.url}/api/admin/users"

    forged = requests.get(url, headers=bearer(admin.id, DEV_JWT_SECRET_KEY), timeout=10)
    assert forged.status_code == 401
    assert forged.json()["error"]["code"] == "invalid_token"
    # The same claims signed with the production key get in: the key alone made the difference.
    genuine = requests.get(url, headers=bearer(admin.id, PROD_JWT_SECRET_KEY), timeout=10)
    assert genuine.status_code == 200
    assert admin.email in [user["email"] for user in genuine.json()["items"]]


def test_production_will_not_start_on_the_dev_secrets(app, tmp_path):
    env = server_env(os.environ, APP_ENV="production", SECRET_KEY=None, JWT_SECRET_KEY=None, WEB_CONCURRENCY=1)
    server = GunicornServer(env, tmp_path / "refused.log").launch()
    try:
        code = server.wait_exit(timeout=60)
        assert code not in (None, 0), "gunicorn kept running on the dev secrets"
        assert "SECRET_KEY is the dev default or shorter than 32 characters" in server.log()
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{server.url}/api/health", timeout=2)
    finally:
        server.stop()


# --- 8. slow clients hold a greenlet, not a worker ------------------------------------------------


def timed_health(url):
    """Seconds /api/health took to answer 200 (inf if it did not within 10 s)."""
    started = time.monotonic()
    try:
        response = requests.get(f"{url}/api/health", timeout=10)
    except requests.Timeout:
        return float("inf")
    assert response.status_code == 200
    return time.monotonic() - started


def test_idle_and_half_sent_requests_do_not_take_the_site_down(production_server):
    slow = []
    try:
        for n in range(SLOW_CLIENTS):
            sock = socket.create_connection(("127.0.0.1", production_server.port), timeout=5)
            if n % 2 == 0:  # half send part of a request and stop; half send nothing at all
                sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            slow.append(sock)
        time.sleep(0.5)  # the server has accepted them all by now

        timings = [timed_health(production_server.url) for _ in range(3)]
        assert max(timings) < 1.0, f"/api/health took {timings} s behind {SLOW_CLIENTS} slow clients"

        # And the slow ones are dropped once the header timeout (WEB_KEEPALIVE) runs out.
        started = time.monotonic()
        for sock in slow:
            sock.settimeout(HEADER_TIMEOUT + 10)
            assert sock.recv(1024) == b""  # closed by the server, nothing answered
        assert time.monotonic() - started < HEADER_TIMEOUT + 10
    finally:
        for sock in slow:
            sock.close()


# --- 9. sign-out ends the session on the server; sign-in rotates the CSRF token ---------------------


def csrf_token_of(response):
    return _CSRF_META.search(response.get_data(as_text=True)).group(1)


def test_a_session_cookie_kept_after_sign_out_opens_nothing(app, client):
    pages = PageClient(client)
    pages.signup()
    token = csrf_token_of(pages.get("/jobs"))
    kept = client.get_cookie("session").value
    thief = app.test_client()
    thief.set_cookie("session", kept)

    # Before sign-out the copy is as good as the original: it reads the page and schedules.
    assert thief.get("/jobs").status_code == 200
    assert thief.post("/jobs", data={**job_form("while signed in"), "csrf_token": token}).status_code == 302
    assert [job.subject for job in stored_jobs()] == ["while signed in"]

    assert pages.logout().headers["Location"].endswith("/login")

    page = thief.get("/jobs")
    assert page.status_code == 302 and page.headers["Location"].startswith("/login")
    posted = thief.post("/jobs", data={**job_form("after sign-out"), "csrf_token": token})
    assert posted.status_code == 302 and posted.headers["Location"].startswith("/login")
    fragment = thief.post(
        "/jobs", data=job_form("after sign-out, htmx"), headers={"HX-Request": "true", "X-CSRFToken": token}
    )
    assert fragment.status_code == 401 and fragment.headers["HX-Redirect"].startswith("/login")
    assert [job.subject for job in stored_jobs()] == ["while signed in"]


def test_signing_out_signs_out_every_browser_of_that_account_only(app):
    laptop = PageClient(app.test_client())
    email = laptop.signup()
    phone = PageClient(app.test_client())
    assert phone.login(email).status_code == 302
    someone_else = PageClient(app.test_client())
    someone_else.signup()

    laptop.logout()

    assert phone.get("/jobs").status_code == 302
    assert someone_else.get("/jobs").status_code == 200
    # Signing in again gives a session that works.
    assert phone.login(email).status_code == 302
    assert phone.get("/jobs").status_code == 200


def test_signing_in_rotates_the_csrf_token(app, client):
    from webapp.services.accounts import users

    email = f"user-{uuid.uuid4().hex[:10]}@example.com"
    users.register(email, PASSWORD)
    pages = PageClient(client)
    before = pages.csrf_token("/login")
    with client.session_transaction() as session:
        secret_before = session["csrf_token"]

    assert pages.login(email).status_code == 302
    after = csrf_token_of(pages.get("/jobs"))
    with client.session_transaction() as session:
        secret_after = session["csrf_token"]

    assert secret_after != secret_before and after != before
    # A token seen before sign-in (say, planted by someone who used the browser) is refused now.
    stale = client.post("/jobs", data={**job_form("stale token"), "csrf_token": before})
    assert stale.status_code == 400
    assert client.post("/jobs", data={**job_form("fresh token"), "csrf_token": after}).status_code == 302
    assert [job.subject for job in stored_jobs()] == ["fresh token"]


# --- 10. throttling that nobody can use to lock the owner out --------------------------------------


@pytest.fixture()
def throttled(app, monkeypatch):
    """A limit of 3 per minute, an owner, and fresh addresses (new buckets in Redis each run)."""
    from webapp.services.accounts import users

    monkeypatch.setitem(app.config, "LOGIN_RATE_LIMIT", "3 per minute")
    run = uuid.uuid4().hex[:8]
    owner = f"owner-{run}@example.com"
    users.register(owner, PASSWORD)

    def browser(n):
        return PageClient(app.test_client(), ip=f"10.{int(run[:2], 16)}.{int(run[2:4], 16)}.{n}")

    return owner, browser


def api_login(browser, email, password):
    return browser.client.post(
        "/api/auth/login", json={"email": email, "password": password}, environ_base=browser.environ
    )


def test_wrong_passwords_from_rotating_addresses_do_not_lock_the_owner_out(throttled):
    owner, browser = throttled
    attackers = [browser(n) for n in range(1, 7)]
    # Six addresses, one wrong password each: twice the per-account limit.
    assert [attacker.login(owner, "wrong-password").status_code for attacker in attackers] == [401] * 6

    # The owner, from addresses that have not failed, signs in on the page and on the API.
    assert browser(100).login(owner).headers["Location"].endswith("/jobs")
    token = api_login(browser(101), owner, PASSWORD)
    assert token.status_code == 200 and token.json["access_token"]

    # An address that has failed against the full account is refused, whatever it sends now,
    # on the page and on the API (its own per-IP bucket is far from full: 1 of 3).
    refused = attackers[0].login(owner, PASSWORD)
    assert refused.status_code == 429 and "Too many sign-in attempts" in refused.get_data(as_text=True)
    assert api_login(attackers[1], owner.upper(), "another-guess").status_code == 429


def test_an_address_that_keeps_failing_is_throttled_per_account_and_per_ip(throttled):
    owner, browser = throttled
    attacker = browser(1)
    assert [attacker.login(owner, "wrong-password").status_code for _ in range(4)] == [401, 401, 401, 429]
    # Another address that has not failed still gets its own try, and the owner gets in.
    assert browser(2).login(owner, "wrong-password").status_code == 401
    assert browser(2).login(owner, "wrong-again").status_code == 429
    assert browser(3).login(owner).status_code == 302
    # One address, many accounts: refused after the limit too (the per-IP bucket), API included.
    sprayer = browser(4)
    statuses = [sprayer.login(f"{n}-{owner}", "x").status_code for n in range(3)]
    assert statuses == [401, 401, 401]
    assert api_login(sprayer, f"another-{owner}", "x").status_code == 429
    # Showing the sign-in page is not an attempt.
    assert sprayer.get("/login").status_code == 200


def test_successful_sign_ins_do_not_fill_the_account_bucket(throttled):
    owner, browser = throttled
    # Three sign-ins (the limit) from three addresses: none of them counts against the account...
    assert [browser(n).login(owner).status_code for n in (1, 2, 3)] == [302, 302, 302]
    # ...so a mistyped password is a plain 401, twice, not a lock.
    typo = browser(4)
    assert [typo.login(owner, "wrong-password").status_code for _ in range(2)] == [401, 401]


def test_the_production_shape_signs_in_over_plain_http_on_localhost(app, production_server):
    """Compose serves http://127.0.0.1:$PORT with Secure session cookies: Chromium keeps those on localhost."""
    from webapp.services.accounts import users

    email = f"user-{uuid.uuid4().hex[:10]}@example.com"
    users.register(email, PASSWORD)
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.chromium_sign_in", production_server.url, email, PASSWORD],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["url"].endswith("/jobs") and result["signed_in"]
    assert result["session_cookie"] == {"secure": True, "httpOnly": True}
