"""The web app under real gunicorn, with the project's gunicorn.conf.py (as `make run` and compose run it)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.support.ferretdb import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0


class GunicornServer:
    """`gunicorn --config gunicorn.conf.py wsgi:app` on 127.0.0.1 and a free port.

    server = GunicornServer(env, log_path).start()   # waits for /api/health
    requests.get(server.url + "/api/health")
    server.stop()
    """

    def __init__(self, env, log_path, extra_args=()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(env)
        self.log_path = Path(log_path)
        self.extra_args = list(extra_args)
        self.process = None

    def launch(self):
        """Start the process without waiting for it to answer."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--config",
                    str(PROJECT_ROOT / "gunicorn.conf.py"),
                    "wsgi:app",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    *self.extra_args,
                ],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def start(self):
        """Start and wait until /api/health answers 200."""
        self.launch()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.log()}")
            try:
                if requests.get(f"{self.url}/api/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer within {START_TIMEOUT} s:\n{self.log()}")

    def wait_exit(self, timeout):
        """The exit code once the process ends by itself (None if it is still running)."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def server_env(base, **overrides):
    """`base` with `overrides`, and without any variable whose override is None."""
    env = dict(base)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    env.setdefault("PATH", os.environ.get("PATH", ""))
    return env
