"""Real servers for the whole suite: FerretDB, an SMTP server, Redis, Huey consumers.

The environment is fixed here, at import, before any test imports `webapp`
or `tasks`: the Huey instance is built from it when `tasks` is first loaded.

The suite starts every server it uses, on free ports, and touches no other: the
MONGODB_URI and REDIS_URL of your shell (meant for `make run`) are ignored. To run it
against servers of your own, say so with TEST_MONGODB_URI and TEST_REDIS_URL; the
suite then starts none, and tests that kill or restart the database skip.
"""

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
import redis
from pymongo import monitoring

from scripts.preflight import message as preflight_message
from scripts.preflight import redis_server_executable
from tests.support.commands import RECORDER
from tests.support.consumer import HueyConsumer
from tests.support.faults import FaultySmtp
from tests.support.ferretdb import FerretDBServer
from tests.support.ferretdb import free_port
from tests.support.pages import PageClient
from tests.support.redis_server import RedisServer
from tests.support.smtp import SmtpTestServer

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RUN_ID = uuid.uuid4().hex[:8]
TMP = Path(tempfile.mkdtemp(prefix=f"mailjobs-tests-{RUN_ID}-"))
FERRETDB_PORT = free_port()
SMTP_PORT = free_port()
REDIS_PORT = free_port()
EXTERNAL_MONGODB_URI = os.environ.get("TEST_MONGODB_URI")
EXTERNAL_REDIS_URL = os.environ.get("TEST_REDIS_URL")

TEST_ENV = {
    "APP_ENV": "testing",
    "MONGODB_URI": EXTERNAL_MONGODB_URI or f"mongodb://127.0.0.1:{FERRETDB_PORT}/mailjobs_test",
    "REDIS_URL": EXTERNAL_REDIS_URL or f"redis://127.0.0.1:{REDIS_PORT}/0",
    "HUEY_NAME": f"mailjobs-test-{RUN_ID}",
    "MAIL_SERVER": "127.0.0.1",
    "MAIL_PORT": str(SMTP_PORT),
    "MAIL_DEFAULT_SENDER": "scheduler@mailjobs.test",
    "MAIL_TIMEOUT": "5",
    "RETRY_BASE_SECONDS": "0.5",
    "RETRY_CAP_SECONDS": "2",
    "LEASE_SECONDS": "30",
    "LOGIN_RATE_LIMIT": "1000 per minute",
    "SIGNUP_RATE_LIMIT": "1000 per minute",
    "JOB_CREATE_RATE_LIMIT": "10000 per minute",
    "LOG_LEVEL": "INFO",
    # Exact counts on every read: tests count right after writing (tests/test_change_marks.py tries the kept ones).
    "JOB_COUNTS_SECONDS": "0",
}
os.environ.update(TEST_ENV)
# Before any client exists, so every one reports its commands (tests/support/commands.py; idle until asked).
monitoring.register(RECORDER)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def database():
    """The suite's MongoDB: a FerretDB started here, or None (none started) with TEST_MONGODB_URI."""
    if EXTERNAL_MONGODB_URI:
        yield None
        return
    binary = os.environ.get("FERRETDB_BIN") or str(PROJECT_ROOT / "var" / "bin" / "ferretdb")
    server = FerretDBServer(binary, str(TMP / "ferretdb"), port=FERRETDB_PORT)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ferretdb(database):
    """The FerretDB the suite started, for tests that kill or restart it."""
    if database is None:
        pytest.skip("TEST_MONGODB_URI: the database is not one this suite started, so it is not killed or restarted")
    return database


@pytest.fixture(scope="session")
def redis_server():
    """The suite's own redis-server, or None (none started) with TEST_REDIS_URL."""
    if EXTERNAL_REDIS_URL:
        yield None
        return
    if redis_server_executable() is None:  # stop once with the install commands, not test by test
        pytest.exit(preflight_message("test", ["redis"]), returncode=1)
    server = RedisServer(TMP / "redis" / "redis.log", port=REDIS_PORT).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_client(redis_server):
    """The real Redis the queue lives on; this run's Huey keys are removed at the end."""
    client = redis.Redis.from_url(TEST_ENV["REDIS_URL"])
    client.ping()
    yield client
    for key in client.scan_iter(f"huey.*{TEST_ENV['HUEY_NAME'].replace('-', '')}*"):
        client.delete(key)


@pytest.fixture(scope="session")
def smtp_server():
    server = SmtpTestServer(port=SMTP_PORT)
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def smtp(smtp_server):
    """The SMTP server, emptied and with no faults, for one test."""
    smtp_server.clear()
    smtp_server.reset_faults()
    yield smtp_server
    smtp_server.reset_faults()


@pytest.fixture(scope="session")
def app(database, redis_client, smtp_server):
    import mongoengine

    from webapp.app import create_app
    from webapp.config import load_config

    yield create_app(load_config("testing"))
    mongoengine.disconnect()  # close the client, or its finalizer warns at exit


@pytest.fixture(autouse=True)
def clean_db(request):
    """Each test starts with no users, jobs, schedules, revocations or audit entries (only when it uses the app)."""
    if "app" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("app")
    from webapp.models import AuditEntry
    from webapp.models import Job
    from webapp.models import JobCounts
    from webapp.models import RevokedToken
    from webapp.models import Schedule
    from webapp.models import User

    for model in (User, Job, RevokedToken, AuditEntry, JobCounts, Schedule):
        model._get_collection().delete_many({})
    yield


@pytest.fixture()
def client(app):
    return app.test_client()


def worker_env(**overrides):
    """The environment a consumer process gets: the test env plus overrides."""
    env = dict(os.environ)
    env.update(TEST_ENV)
    env.update({key: str(value) for key, value in overrides.items()})
    return env


@pytest.fixture(scope="session")
def consumer(app):
    """One real Huey consumer (4 threads) shared by the delivery tests."""
    worker = HueyConsumer(worker_env(), TMP / "consumer.log", workers=4).start()
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def shared_consumer_stopped(consumer):
    """Keep the shared consumer out of a module that runs its own consumers or counts what they do
    (it polls the same database and queue); it is started again after the module.

    A module opts in with `pytestmark = pytest.mark.usefixtures("shared_consumer_stopped")`.
    """
    consumer.stop()
    yield
    consumer.start()


@pytest.fixture(scope="module")
def mail_server():
    """An SMTP server whose faults a test sets (tests/support/faults.py), one per module that asks."""
    server = FaultySmtp()
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def mail(mail_server):
    """The module's faulty SMTP server, emptied, accepting everything, and running (a test may stop it)."""
    if mail_server._controller is None:
        mail_server.start()
    mail_server.clear()
    mail_server.reset_faults()
    yield mail_server
    mail_server.reset_faults()


class ApiClient:
    """Register and log in through the API, then call it as that user."""

    def __init__(self, client):
        self.client = client

    def register(self, email, password="correct-horse-9"):
        return self.client.post("/api/auth/register", json={"email": email, "password": password})

    def login(self, email, password="correct-horse-9"):
        response = self.client.post("/api/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.json
        return {"Authorization": f"Bearer {response.json['access_token']}"}

    def user(self, email=None):
        """A fresh account; returns its auth headers."""
        email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
        assert self.register(email).status_code == 201
        return self.login(email)

    def admin(self, email=None):
        """A fresh admin account, made the way an operator would (the CLI service)."""
        from webapp.services.accounts import users

        email = email or f"admin-{uuid.uuid4().hex[:10]}@example.com"
        users.create_or_promote_admin(email, "correct-horse-9")
        return self.login(email)


@pytest.fixture()
def api(client):
    return ApiClient(client)


# --- the browser tests (tests/web/test_browser.py, tests/monitoring/test_status_browser.py) ------------------------
# Here, not in a test module: Playwright's sync API can run once per process, so they share it.


@pytest.fixture(scope="session")
def live_server(app):
    from tests.support.live_server import LiveServer

    server = LiveServer(app).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    from scripts.preflight import chromium_executable
    from scripts.preflight import message as preflight_message
    from scripts.preflight import playwright_chromium_installed
    from tests.support.browser import CHROMIUM_ARGS

    # A Chromium on PATH (its usual names), else Playwright's own when one is installed.
    executable = chromium_executable()
    if executable is None and not playwright_chromium_installed():
        pytest.exit(preflight_message("test", ["chromium"]), returncode=1)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def open_browser(browser, live_server):
    """Open a fresh browser profile (its own cookies) in Paris; closed after the test."""
    from tests.support.browser import ZONE

    contexts = []

    def open_(width=1280, height=900):
        context = browser.new_context(
            base_url=live_server.url, timezone_id=ZONE, locale="en-GB", viewport={"width": width, "height": height}
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.dialogs = []

        def on_dialog(dialog):
            page.dialogs.append((dialog.type, dialog.message))
            dialog.accept()

        page.on("dialog", on_dialog)
        return page

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture()
def pages(client):
    """The app's pages as a signed-out browser would use them (forms with their CSRF token)."""
    return PageClient(client)
