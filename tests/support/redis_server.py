"""A real redis-server (or valkey-server) that the tests start, on 127.0.0.1 and a free port.

The suite's queue lives on one of these (tests/conftest.py), and fault tests start their
own to stop and restart. Nothing here ever connects to a Redis it did not start.
"""

import os
import subprocess
import time
from pathlib import Path

import redis

from scripts.preflight import redis_server_executable
from tests.support.ferretdb import free_port

START_TIMEOUT = 10.0


class RedisServer:
    """A throwaway server with no persistence: stopping it loses the queue, as a crash would.

    `stop()` then `start()` brings it back empty on the same port. Its log (and its working
    directory, where nothing is written) is next to `log_path`.
    """

    def __init__(self, log_path, port=None):
        self.port = port or free_port()
        self.log_path = Path(log_path)
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        """Start the server and return self once it answers PING; raise with its log if it cannot."""
        binary = redis_server_executable()
        if binary is None:
            raise RuntimeError(
                "no redis-server (or valkey-server) on PATH: `python3 scripts/preflight.py test` "
                "says how to install one"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.log_path.parent),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = os.linesep.join(self.log_path.read_text(errors="replace").splitlines()[-20:])
                raise RuntimeError(f"{binary} did not start on port {self.port}; its log:\n{tail}")
            time.sleep(0.05)
        return self

    def stop(self):
        """Kill the server (SIGKILL, as a crash would) and wait for it."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def _answers(self):
        try:
            return redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
        except redis.RedisError:
            return False
