"""A fast SMTP sink for the delivery benchmarks, in a process of its own.

Accepts every message and appends one line per message to a log file:
`<arrival time (epoch seconds)> <Message-ID> <client host:port>`, written as
the 250 is given, so the benchmarks read arrivals without sharing a
process (or a GIL) with the server.

    .venv/bin/python -m bench.sink --port 8025 --log arrivals.log
"""

import argparse
import re
import signal
import threading
import time

from aiosmtpd.controller import Controller

MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)


class LoggingHandler:
    """Writes one line per accepted message."""

    def __init__(self, out):
        self.out = out

    async def handle_DATA(self, server, session, envelope):
        found = MESSAGE_ID.search(envelope.original_content[:8192])
        message_id = found.group(1).decode("ascii", "replace") if found else "-"
        host, port = session.peer[:2]
        self.out.write(f"{time.time():.6f} {message_id} {host}:{port}\n")
        return "250 OK"


class ArrivalLog:
    """The sink's log, read incrementally: each call to `read()` parses only the lines added since."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.arrivals = []

    def read(self):
        """[(arrival time, Message-ID, peer)] so far."""
        with open(self.path, "rb") as log:
            log.seek(self.offset)
            chunk = log.read()
        complete = chunk.rfind(b"\n") + 1  # a line still being written waits for the next read
        self.offset += complete
        for line in chunk[:complete].decode().splitlines():
            parts = line.split()
            if len(parts) == 3:
                self.arrivals.append((float(parts[0]), parts[1], parts[2]))
        return self.arrivals


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    with open(args.log, "a", buffering=1) as out:
        controller = Controller(
            LoggingHandler(out),
            hostname="127.0.0.1",
            port=args.port,
            server_hostname="bench-sink",
            enable_SMTPUTF8=True,
        )
        controller.start()
        print("ready", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        stop.wait()
        controller.stop()


if __name__ == "__main__":
    main()
