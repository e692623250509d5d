"""A newcomer's first commands: `make test` says what the machine lacks, the CLI follows
FERRETDB_PORT, and `make run`'s bootstrap makes the first admin without a second terminal."""

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pymongo
import pytest

from scripts.preflight import CHROMIUM_NAMES
from scripts.preflight import REDIS_NAMES
from tests.support.ferretdb import FerretDBServer
from tests.support.ferretdb import free_port
from tests.support.live_server import LiveServer

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct-horse-9"


def path_without(tmp_path, names):
    """A PATH directory with every command of the real PATH except `names` (first one wins)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            target = bin_dir / entry.name
            if entry.name in names or target.exists() or target.is_symlink():
                continue
            if entry.is_file() and os.access(entry.path, os.X_OK):
                target.symlink_to(entry.path)
    return bin_dir


def bare_env(tmp_path, **extra):
    """An environment with nothing of the suite's (no MONGODB_URI, REDIS_URL...), as a new shell has."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "LANG": "C.UTF-8",
        # Where `playwright install` would have put a browser: empty here.
        "PLAYWRIGHT_BROWSERS_PATH": str(tmp_path / "no-playwright-browsers"),
    }
    env.update({key: str(value) for key, value in extra.items()})
    return env


# --- make test's preflight ------------------------------------------------------------------


def test_make_test_stops_at_once_with_install_commands_when_redis_and_chromium_are_missing(tmp_path):
    bin_dir = path_without(tmp_path, {*REDIS_NAMES, *CHROMIUM_NAMES})
    make = shutil.which("make")
    # The real `make test`; -o keeps make from reinstalling the venv or rebuilding FerretDB or Mailpit,
    # and PYTEST_ARGS makes pytest only collect one file should the preflight ever let it through.
    done = subprocess.run(
        [
            make,
            "-o",
            ".venv/.installed",
            "-o",
            ".venv/.installed-test",
            "-o",
            "var/bin/ferretdb",
            "-o",
            "var/bin/mailpit",
            "test",
            "PYTEST_ARGS=--collect-only -q tests/devstack/test_config.py",
        ],
        cwd=PROJECT_ROOT,
        env=bare_env(tmp_path, PATH=bin_dir),
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = done.stdout + done.stderr

    assert done.returncode != 0, output
    assert "collected" not in output and "test_config" not in output  # stopped before pytest
    assert "make test cannot start: this machine lacks" in output
    assert "redis-server (the suite starts its own private one" in output
    assert "Chromium (the browser tests drive it headless)" in output
    assert "Debian: sudo apt-get install -y redis-server chromium\n" in output
    assert "Ubuntu: sudo apt-get install -y redis-server\n" in output
    assert "macOS:  brew install redis\n" in output
    assert "make chromium" in output
    # The venv, FerretDB and Mailpit are there, so Python and Go are not asked for.
    assert "Python 3.13" not in output and "Go 1.21" not in output


def test_preflight_finds_redis_and_chromium_under_their_other_names_and_skips_a_snap_stub(tmp_path):
    redis_server, chromium = shutil.which("redis-server") or shutil.which("valkey-server"), shutil.which("chromium")
    if not (redis_server and chromium):
        pytest.skip("needs a real redis-server and chromium to put under other names")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "valkey-server").symlink_to(redis_server)
    # Ubuntu's /usr/bin/chromium-browser: a script that only asks for the snap. It must be passed over.
    stub = bin_dir / "chromium-browser"
    stub.write_text("#!/bin/sh\necho \"Command '/usr/bin/chromium-browser' requires the chromium snap\"\nexit 1\n")
    stub.chmod(0o755)

    def preflight():
        return subprocess.run(
            [sys.executable, "scripts/preflight.py", "test", "--python", sys.executable],
            cwd=PROJECT_ROOT,
            env=bare_env(tmp_path, PATH=bin_dir),
            capture_output=True,
            text=True,
            timeout=30,
        )

    stubbed = preflight()
    assert stubbed.returncode == 1
    assert "Chromium" in stubbed.stderr and "redis-server (the suite" not in stubbed.stderr

    (bin_dir / "google-chrome-stable").symlink_to(chromium)
    found = preflight()
    assert (found.returncode, found.stderr) == (0, "")


# --- the servers the suite uses are the ones it started ---------------------------------------


def test_the_queue_lives_on_the_redis_server_this_suite_started(redis_server, redis_client):
    if redis_server is None:
        pytest.skip("TEST_REDIS_URL: the suite runs on a Redis of your own")
    from tasks.queue import huey

    assert os.environ["REDIS_URL"] == redis_server.url
    assert redis_client.info("server")["process_id"] == redis_server.process.pid
    assert huey.storage.conn.info("server")["process_id"] == redis_server.process.pid


def test_the_ferretdb_a_test_may_kill_is_the_database_the_app_uses(ferretdb, app):
    from webapp.models import User

    User.objects.first()  # connect
    assert User._get_collection().database.client.address == ("127.0.0.1", ferretdb.port)


def test_with_test_mongodb_uri_the_suite_starts_no_ferretdb_and_kill_tests_skip(database, tmp_path):
    if database is None:
        pytest.skip("already running against TEST_MONGODB_URI")
    env = dict(
        os.environ,
        TEST_MONGODB_URI=f"{database.uri}mailjobs_inner",
        FERRETDB_BIN=str(tmp_path / "there-is-no-ferretdb-here"),
    )  # starting one would fail
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "tests/devstack/test_first_run.py",
            "-k",
            "ferretdb_a_test_may_kill or creates_once_then_leaves",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr

    assert done.returncode == 0, output[-3000:]
    assert "1 passed, 1 skipped" in output
    assert "TEST_MONGODB_URI: the database is not one this suite started" in output


# --- the flask CLI on a non-default FerretDB port --------------------------------------------


@pytest.fixture(scope="module")
def ferretdb_elsewhere(tmp_path_factory):
    """A FerretDB of this module's own on a free port (never 27017), as `make run` on a moved port."""
    binary = os.environ.get("FERRETDB_BIN") or str(PROJECT_ROOT / "var" / "bin" / "ferretdb")
    server = FerretDBServer(binary, str(tmp_path_factory.mktemp("ferretdb-elsewhere")))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory):
    """The app's code in a fresh directory: its .env is ours to write, whatever the checkout has."""
    root = tmp_path_factory.mktemp("project")
    ignore = shutil.ignore_patterns("__pycache__")
    for name in ("webapp", "tasks", "templates"):
        shutil.copytree(PROJECT_ROOT / name, root / name, ignore=ignore)
    shutil.copy(PROJECT_ROOT / "wsgi.py", root / "wsgi.py")
    return root


@pytest.mark.parametrize("where", ["environment", "dotenv", "dotenv-read-by-the-app-alone"])
def test_create_admin_reaches_the_ferretdb_on_ferretdb_port(ferretdb_elsewhere, project_copy, tmp_path, where):
    port = ferretdb_elsewhere.port
    email = f"me-{uuid.uuid4().hex[:8]}@example.com"
    env = bare_env(tmp_path, APP_ENV="development", ADMIN_PASSWORD=PASSWORD)
    dotenv = project_copy / ".env"
    dotenv.unlink(missing_ok=True)
    if where == "environment":
        env["FERRETDB_PORT"] = str(port)
    else:
        dotenv.write_text(f"FERRETDB_PORT={port}\n")
    if where == "dotenv-read-by-the-app-alone":
        env["FLASK_SKIP_DOTENV"] = "1"  # as gunicorn and huey_consumer, which never load .env themselves

    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "create-admin", email],
        cwd=project_copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{email} is an admin." in done.stdout
    with pymongo.MongoClient(ferretdb_elsewhere.uri, serverSelectionTimeoutMS=5000) as client:
        user = client["mailjobs"]["users"].find_one({"email": email})
    assert user is not None and user["role"] == "admin"


# --- the admin `make run` makes from ADMIN_EMAIL / ADMIN_PASSWORD -----------------------------


def test_ensure_admin_creates_once_then_leaves_the_admin_alone(app):
    from webapp.models import User
    from webapp.services.accounts import users
    from webapp.services.accounts.bootstrap import ALREADY_ADMIN
    from webapp.services.accounts.bootstrap import CREATED
    from webapp.services.accounts.bootstrap import ensure_admin

    with app.app_context():
        assert ensure_admin("Boss@Example.com", PASSWORD)[0] == CREATED
        first_hash = users.find_user_by_email("boss@example.com").password_hash
        # Started again, even with another ADMIN_PASSWORD: nothing changes, the password least of all.
        assert ensure_admin("boss@example.com", PASSWORD)[0] == ALREADY_ADMIN
        assert ensure_admin("boss@example.com", "another-password-9")[0] == ALREADY_ADMIN
        bosses = list(User.objects(email="boss@example.com"))
    assert [(user.role, user.password_hash) for user in bosses] == [("admin", first_hash)]
    assert users.authenticate("boss@example.com", PASSWORD) is not None


def test_ensure_admin_promotes_a_user_only_with_that_users_password(app, api):
    from webapp.services.accounts import users
    from webapp.services.accounts.bootstrap import NOT_PROMOTED
    from webapp.services.accounts.bootstrap import PROMOTED
    from webapp.services.accounts.bootstrap import ensure_admin

    assert api.register("squatter@example.com", "squatters-own-9").status_code == 201
    assert api.register("mine@example.com", PASSWORD).status_code == 201
    with app.app_context():
        squatter_hash = users.find_user_by_email("squatter@example.com").password_hash
        outcome, user = ensure_admin("squatter@example.com", PASSWORD)
        assert (outcome, user.role, user.password_hash) == (NOT_PROMOTED, "user", squatter_hash)
        assert users.authenticate("squatter@example.com", "squatters-own-9") is not None

        outcome, user = ensure_admin("mine@example.com", PASSWORD)
        assert (outcome, user.role) == (PROMOTED, "admin")
        assert users.find_user_by_email("mine@example.com").role == "admin"
    assert api.client.get("/api/admin/users", headers=api.login("mine@example.com")).status_code == 200


def test_ensure_admin_never_demotes_another_admin_and_refuses_bad_input_before_writing(app, api):
    from webapp.models import User
    from webapp.services.accounts import users
    from webapp.services.accounts.bootstrap import ensure_admin
    from webapp.services.errors import ValidationFailed

    api.admin("first-admin@example.com")
    with app.app_context():
        for email, password in (
            ("not-an-email", PASSWORD),
            ("short@example.com", "short"),
            ("nopass@example.com", None),
        ):
            with pytest.raises(ValidationFailed):
                ensure_admin(email, password)
        ensure_admin("second-admin@example.com", PASSWORD)
        assert users.find_user_by_email("first-admin@example.com").role == "admin"
        assert sorted(user.email for user in User.objects) == ["first-admin@example.com", "second-admin@example.com"]


@pytest.fixture()
def live_url(app):
    server = LiveServer(app).start()
    yield server.url
    server.stop()


def run_bootstrap(url, *args, **env):
    """`make run`'s bootstrap program, as supervisord starts it, against the suite's database."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("ADMIN_")}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "devstack.bootstrap", "--url", url, "--mail-dir", "var/mail", *args],
        cwd=PROJECT_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_bootstrap_ends_start_up_with_the_url_the_mail_folder_and_the_admin(app, live_url):
    from webapp.services.accounts import users

    first = run_bootstrap(live_url, ADMIN_EMAIL="owner@example.com", ADMIN_PASSWORD=PASSWORD)
    again = run_bootstrap(live_url, ADMIN_EMAIL="owner@example.com", ADMIN_PASSWORD="not-the-password-9")

    assert first.returncode == 0, first.stderr[-2000:]
    block = first.stdout.strip().splitlines()
    assert block[0] == block[-1] and set(block[0]) == {"="}  # one block, and nothing after it
    assert f"Open   {live_url}" in first.stdout
    assert "every message is saved in var/mail/" in first.stdout
    assert "owner@example.com: created now as admin, with ADMIN_PASSWORD" in first.stdout
    assert f"sign in at {live_url}/login" in first.stdout
    assert again.returncode == 0, again.stderr[-2000:]
    assert "owner@example.com is an admin (its password left as it was)" in again.stdout
    with app.app_context():
        assert users.find_user_by_email("owner@example.com").role == "admin"
        assert users.authenticate("owner@example.com", PASSWORD) is not None


def test_without_admin_email_the_bootstrap_says_how_to_become_admin(live_url):
    done = run_bootstrap(live_url)

    assert done.returncode == 0, done.stderr[-2000:]
    assert f"sign up at {live_url}/signup, then run:" in done.stdout
    assert "set ADMIN_EMAIL and ADMIN_PASSWORD in .env and restart" in done.stdout
    assert ".venv/bin/flask --app wsgi create-admin YOUR-EMAIL" in done.stdout


def test_the_bootstrap_announces_nothing_while_the_site_does_not_answer(app):
    from webapp.services.accounts import users

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    done = run_bootstrap(url, "--timeout", "1", ADMIN_EMAIL="early@example.com", ADMIN_PASSWORD=PASSWORD)

    assert done.returncode == 1
    assert f"{url}/api/health did not answer 200 within 1 s" in done.stdout
    assert "mailjobs is up" not in done.stdout
    with app.app_context():
        assert users.find_user_by_email("early@example.com") is None
