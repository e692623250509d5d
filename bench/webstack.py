"""The stack the read benchmarks measure through HTTP: what `make run` runs, on free ports.

FerretDB (this repo's build, with its debug listener on, so the commands it served can be
counted from its Prometheus counters), the web app under gunicorn with gunicorn.conf.py
(gevent, WEB_CONCURRENCY workers), one `huey_consumer` (Huey on SQLite, as `make run`), and an
SMTP server (tests/support/smtp.py) in this process. `code` runs the web app and the consumer
from another checkout of the project (see `checkout`), for a baseline measured in the same run.

    with FerretDB(data_dir) as db:
        stack = WebStack(db, tmp, code=ROOT).start()
        session = stack.api_session("big@mailjobs.bench", "bench-password-9")
        session.get(stack.url + "/api/users/jobs")
        stack.stop()
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.consumer import HueyConsumer  # noqa: E402
from tests.support.ferretdb import FerretDBServer  # noqa: E402
from tests.support.ferretdb import free_port  # noqa: E402

DATABASE = "mailjobs_bench"
START_TIMEOUT = 90.0
# The driver's own monitoring (hello, ping, ...): not the app's round trips.
HANDSHAKES = {
    "hello",
    "ismaster",
    "isMaster",
    "ping",
    "buildInfo",
    "buildinfo",
    "getLastError",
    "saslStart",
    "endSessions",
    "listCollections",
    "listIndexes",
    "createIndexes",
}


def binary():
    return os.environ.get("FERRETDB_BIN") or str(ROOT / "var" / "bin" / "ferretdb")


class CountedFerretDB(FerretDBServer):
    """A FerretDB whose `commands()` says how many of each command it has served so far."""

    def __init__(self, data_dir, port=None):
        self.debug_port = free_port()
        super().__init__(binary(), data_dir, port=port)

    def _command(self):
        return [
            arg if not arg.startswith("--debug-addr") else f"--debug-addr=127.0.0.1:{self.debug_port}"
            for arg in super()._command()
        ]

    def commands(self):
        """{command: count} served since the server started, handshakes and monitoring left out."""
        text = urlopen(f"http://127.0.0.1:{self.debug_port}/debug/metrics", timeout=5).read().decode()
        counts = {}
        for name, value in re.findall(r'^ferretdb_client_requests_total\{command="([^"]+)"[^}]*\} (\d+)$', text, re.M):
            if name not in HANDSHAKES:
                counts[name] = counts.get(name, 0) + int(value)
        return counts


def command_delta(before, after):
    """The commands served between two `commands()` readings."""
    return {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}


def checkout(ref, into):
    """The project as it was at git `ref`, extracted under `into` (sharing this .venv and FerretDB); its path."""
    target = Path(into) / f"code-{ref}"
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    (target / ".venv").symlink_to((ROOT / ".venv").resolve())
    return target


class WebStack:
    """gunicorn and one consumer on a running FerretDB, plus an SMTP server; `stop()` ends them."""

    def __init__(self, database, tmp, code=ROOT, env=None, consumer=True):
        self.database = database
        self.tmp = Path(tmp)
        self.code = Path(code)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.want_consumer = consumer
        self.extra_env = dict(env or {})
        self.web = None
        self.consumer = None
        self.smtp = None

    def env(self):
        from tests.support.smtp import SmtpTestServer

        if self.smtp is None:
            self.smtp = SmtpTestServer(port=free_port())
            self.smtp.start()
        env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "MONGODB_URI")}
        env.update(
            {
                "APP_ENV": "development",
                "MONGODB_URI": self.database.uri + DATABASE,
                "HUEY_SQLITE_PATH": str(self.tmp / f"huey-{self.port}.db"),
                "HUEY_NAME": f"bench-{self.port}",
                "MAIL_SERVER": "127.0.0.1",
                "MAIL_PORT": str(self.smtp.port),
                "LOG_LEVEL": "WARNING",
                "PORT": str(self.port),
                # the benchmark signs in more often than a person does
                "LOGIN_RATE_LIMIT": "10000 per minute",
                **self.extra_env,
            }
        )
        return env

    def start(self):
        env = self.env()
        self.web_log = open(self.tmp / f"web-{self.port}.log", "ab")
        self.web = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                str(self.code / "gunicorn.conf.py"),
                "wsgi:app",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--access-logfile",
                "/dev/null",
            ],
            cwd=self.code,
            env=env,
            stdout=self.web_log,
            stderr=subprocess.STDOUT,
        )
        self._wait_for_health()
        if self.want_consumer:
            self.consumer = HueyConsumer(env, self.tmp / f"consumer-{self.port}.log", workers=4)
            self.consumer.command_cwd = self.code
            self.consumer.start = _start_in(self.consumer, self.code)
            self.consumer.start()
        return self

    def _wait_for_health(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.web.poll() is not None:
                raise RuntimeError(f"gunicorn exited: see {self.web_log.name}")
            try:
                if requests.get(self.url + "/api/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"gunicorn did not answer within {START_TIMEOUT} s: see {self.web_log.name}")

    def stop_consumer(self):
        if self.consumer is not None:
            self.consumer.stop(timeout=20)
            self.consumer = None

    def stop(self):
        self.stop_consumer()
        if self.web is not None and self.web.poll() is None:
            self.web.terminate()
            try:
                self.web.wait(20)
            except subprocess.TimeoutExpired:
                self.web.kill()
                self.web.wait()
        if self.smtp is not None:
            self.smtp.stop()
            self.smtp = None

    # --- clients -----------------------------------------------------------------------------

    def api_session(self, email, password):
        """A requests session carrying a bearer token for `email`."""
        session = requests.Session()
        answer = session.post(self.url + "/api/auth/login", json={"email": email, "password": password}, timeout=30)
        answer.raise_for_status()
        session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
        return session

    def page_session(self, email, password):
        """A requests session signed in through the sign-in form (a browser's session cookie)."""
        session = requests.Session()
        form = session.get(self.url + "/login", timeout=30).text
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form).group(1)
        answer = session.post(
            self.url + "/login",
            data={"csrf_token": token, "email": email, "password": password, "timezone": ""},
            timeout=30,
            allow_redirects=False,
        )
        if answer.status_code not in (302, 303):
            raise RuntimeError(f"sign-in as {email} answered {answer.status_code}")
        return session


def _start_in(consumer, code):
    """HueyConsumer.start, with the consumer run from `code` (huey_consumer imports `tasks` from its cwd)."""

    def start():
        consumer.log_file = open(consumer.log_path, "ab")
        consumer.process = subprocess.Popen(
            consumer.command(), cwd=code, env=consumer.env, stdout=consumer.log_file, stderr=subprocess.STDOUT
        )
        time.sleep(0.5)
        if consumer.process.poll() is not None:
            raise RuntimeError(f"consumer exited at once; see {consumer.log_path}")
        return consumer

    return start
