"""A local SMTP server that keeps every message as an .eml file instead of delivering it.

Run as `python -m devstack.mail_sink --port 8025 --dir var/mail`; the dev stack
starts it when MAIL_SERVER is unset, so sending mail in development never reaches anyone.
"""

import argparse
import asyncio
import datetime
import email.parser
import email.policy
import os
import re
import signal
import tempfile
import uuid
from pathlib import Path

from aiosmtpd.smtp import SMTP

# Message-IDs are chosen by the sender: keep only what is safe in a file name.
UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._@-]+")


def store_message(directory: Path, data: bytes) -> Path:
    """Write `data` to `directory/<UTC timestamp>-<message id>.eml` and return the path.

    The file is written under a hidden temporary name and renamed into place, so anything
    watching the directory only ever sees complete messages.
    """
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    path = directory / f"{stamp}-{_message_id_ish(data)}.eml"
    if path.exists():  # the same message resent within a microsecond: keep both
        path = path.with_stem(f"{path.stem}-{uuid.uuid4().hex[:8]}")
    with tempfile.NamedTemporaryFile(dir=directory, prefix=".", suffix=".tmp", delete=False) as tmp:
        tmp.write(data)
    os.replace(tmp.name, path)
    return path


def _message_id_ish(data: bytes) -> str:
    headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(data)
    message_id = UNSAFE_IN_NAME.sub("_", str(headers.get("Message-ID") or "").strip("<> \t"))
    return message_id[:80] or uuid.uuid4().hex[:12]


class StoringHandler:
    """aiosmtpd handler: accept every message and store it in a directory."""

    def __init__(self, directory: Path):
        self.directory = directory

    async def handle_DATA(self, server, session, envelope):
        """Store the message as received (raw bytes) and say so on stdout."""
        path = store_message(self.directory, envelope.original_content)
        print(f"mailsink: stored {path} for {', '.join(envelope.rcpt_tos)}", flush=True)
        return "250 OK: stored"


async def serve(host: str, port: int, directory: Path) -> None:
    """Serve SMTP on host:port until SIGINT or SIGTERM."""
    directory.mkdir(parents=True, exist_ok=True)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    handler = StoringHandler(directory)
    # A fixed hostname: aiosmtpd's default, socket.getfqdn(), can stall on a DNS lookup.
    server = await loop.create_server(lambda: SMTP(handler, hostname="mailsink", enable_SMTPUTF8=True), host, port)
    print(f"mailsink: listening on {host}:{port}, storing messages in {directory}", flush=True)
    await stopping.wait()
    server.close()
    server.close_clients()
    await server.wait_closed()
    print("mailsink: stopped", flush=True)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until stopped."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--dir", type=Path, default=Path("var/mail"))
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.dir))


if __name__ == "__main__":
    main()
