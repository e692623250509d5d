"""A real FerretDB (SQLite backend) for the test suite, with the knobs fault tests need."""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pymongo
import pymongo.errors

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FerretDBServer:
    """One FerretDB process serving MongoDB's wire protocol from SQLite files in `data_dir`.

        server = FerretDBServer("var/bin/ferretdb", str(tmp_path))
        server.start()
        client = pymongo.MongoClient(server.uri)
        server.kill()      # the database vanishes mid-operation
        server.restart()   # and comes back: same port, same data
        server.stop()

    Its log goes to `data_dir/ferretdb.log`, appended across restarts. `extra_args` are
    passed on the command line as they are (e.g. `["--test-disable-pushdown"]`).
    """

    def __init__(self, binary: str, data_dir: str, port: int | None = None, extra_args=()):
        self.binary = str(Path(binary).resolve())
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.extra_args = list(extra_args)
        self.log_path = self.data_dir / "ferretdb.log"
        self._process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        """The MongoDB URI to connect to (no database name: callers pick their own)."""
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self) -> None:
        """Start the server and return once it answers a ping; raise with its log if it cannot."""
        if self._process is not None and self._process.poll() is None:
            raise RuntimeError(f"FerretDB already running on port {self.port}")
        if self.port is None:
            self.port = free_port()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                self._command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_until_ready()

    def stop(self) -> None:
        """Stop the server gracefully (SIGTERM), escalating to SIGKILL if it hangs."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def kill(self) -> None:
        """Kill the server outright (SIGKILL), as a crash would; `restart()` brings it back."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None

    def restart(self) -> None:
        """Stop (if running) and start again on the same port with the same data."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> "FerretDBServer":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _command(self) -> list[str]:
        return [
            self.binary,
            "--handler=sqlite",
            f"--sqlite-url=file:{self.data_dir}/",
            f"--listen-addr=127.0.0.1:{self.port}",
            f"--state-dir={self.data_dir}",
            # "-" disables the debug HTTP listener, which would otherwise take 127.0.0.1:8088
            # in every instance and make parallel servers collide.
            "--debug-addr=-",
            "--telemetry=disable",
            "--log-level=warn",
            *self.extra_args,
        ]

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._fail(f"exited with status {self._process.returncode}")
            if self._answers_ping():
                return
            time.sleep(0.1)
        self._fail(f"did not accept connections within {START_TIMEOUT:.0f} s")

    def _answers_ping(self) -> bool:
        client = pymongo.MongoClient(
            self.uri, serverSelectionTimeoutMS=500, connectTimeoutMS=500, directConnection=True
        )
        try:
            client.admin.command("ping")
            return True
        except pymongo.errors.PyMongoError:
            return False
        finally:
            client.close()

    def _fail(self, reason: str) -> None:
        self.kill()
        raise RuntimeError(
            f"FerretDB on 127.0.0.1:{self.port} {reason}; command: {' '.join(self._command())}\n"
            f"last lines of {self.log_path}:\n{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as error:
            return f"(no log: {error})"
        return os.linesep.join(text.splitlines()[-lines:]) or "(empty)"
