"""A real Mailpit (v1.33.1, built by `make test` into var/bin/mailpit) for the mail transport tests.

Mailpit is the SMTP server docker-compose runs. Here it is started on free
ports with the flags a strict relay would have: STARTTLS required
(`--smtp-require-starttls`), or TLS from the first byte (`--smtp-require-tls`),
with our certificate (`--smtp-tls-cert`,
`--smtp-tls-key`), AUTH required against a password file
(`--smtp-auth-file`, htpasswd format; a plain-text password is accepted).
What it stored is read back through its HTTP API (`/api/v1/...`).
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import requests

from tests.support.ferretdb import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VERSION = "v1.33.1"
START_TIMEOUT = 15.0
BUILD_HINT = (
    "Mailpit is missing: `make test` builds it first (scripts/build-mailpit.sh, "
    f"`GOBIN=$(pwd)/var/bin go install github.com/axllent/mailpit@{VERSION}`, about two minutes once); "
    "or name a binary with MAILPIT_BIN"
)


def mailpit_binary():
    """The Mailpit to run: MAILPIT_BIN, else var/bin/mailpit; None if there is none."""
    path = Path(os.environ.get("MAILPIT_BIN") or PROJECT_ROOT / "var" / "bin" / "mailpit")
    return path if path.is_file() and os.access(path, os.X_OK) else None


class MailpitServer:
    """One Mailpit process: SMTP on `smtp_port`, its HTTP API on `http_port`, its database in `directory`.

    server = MailpitServer(binary, tmp_path, cert=files, users={"mailjobs": "secret"}).start()
    ...                                     # the app sends to 127.0.0.1:server.smtp_port
    [summary] = server.messages()
    server.stop()
    """

    def __init__(self, binary, directory, cert=None, users=None, implicit_tls=False):
        self.binary = str(binary)
        self.directory = Path(directory)
        self.cert = cert
        self.users = users or {}
        self.implicit_tls = implicit_tls
        self.smtp_port = free_port()
        self.http_port = free_port()
        self.log_path = self.directory / "mailpit.log"
        self.process = None

    @property
    def api(self):
        return f"http://127.0.0.1:{self.http_port}/api/v1"

    def command(self):
        args = [
            self.binary,
            "--smtp",
            f"127.0.0.1:{self.smtp_port}",
            "--listen",
            f"127.0.0.1:{self.http_port}",
            "--database",
            str(self.directory / "mailpit.db"),
            "--smtp-disable-rdns",
        ]
        if self.cert:
            args += ["--smtp-tls-cert", str(self.cert.cert), "--smtp-tls-key", str(self.cert.key)]
            # TLS from the first byte (what MAIL_USE_SSL speaks), else STARTTLS before anything else.
            args.append("--smtp-require-tls" if self.implicit_tls else "--smtp-require-starttls")
        if self.users:
            auth_file = self.directory / "smtp-users"
            auth_file.write_text("".join(f"{user}:{password}\n" for user, password in self.users.items()))
            args += ["--smtp-auth-file", str(auth_file)]
        return args

    def start(self):
        """Start Mailpit; return self once both its SMTP port and its API answer."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mailpit did not start; its log:\n{self.log_tail()}")
            time.sleep(0.05)
        return self

    def _ready(self):
        try:
            return requests.get(f"http://127.0.0.1:{self.http_port}/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log_tail(self, lines=40):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def messages(self):
        """Summaries of the stored messages, newest first (`ID`, `MessageID`, `Subject`, `To`, ...)."""
        response = requests.get(f"{self.api}/messages", params={"limit": 1000}, timeout=5)
        response.raise_for_status()
        return response.json()["messages"]

    def message(self, message_id):
        """One stored message as Mailpit parsed it (`Text`, `Subject`, `From`, `To`, `MessageID`, ...)."""
        response = requests.get(f"{self.api}/message/{message_id}", timeout=5)
        response.raise_for_status()
        return response.json()

    def headers(self, message_id):
        """The stored message's headers: {name: [values]}."""
        response = requests.get(f"{self.api}/message/{message_id}/headers", timeout=5)
        response.raise_for_status()
        return response.json()

    def raw(self, message_id):
        """The stored message's bytes, as the server received them."""
        response = requests.get(f"{self.api}/message/{message_id}/raw", timeout=5)
        response.raise_for_status()
        return response.content

    def clear(self):
        requests.delete(f"{self.api}/messages", timeout=5).raise_for_status()
