"""An in-process SMTP server for tests: records what it accepts, fails on request.

Hooks run on aiosmtpd's event-loop thread while tests call in from theirs, so every piece of
shared state is guarded by one lock (and a condition on it for `wait_for`).
"""

import asyncio
import collections
import email.message
import email.policy
import socket
import threading
import time
from dataclasses import dataclass
from email.parser import BytesParser

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

ACCEPTED = "250 OK"


@dataclass(frozen=True)
class ReceivedMessage:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    message: email.message.EmailMessage
    message_id: str | None
    received_at: float
    mail_options: tuple[str, ...] = ()
    # The client's (address, port): messages with the same peer came over the same connection.
    peer: tuple | None = None


class SmtpTestServer:
    """A real SMTP server on a local port, run in a background thread.

        smtp = SmtpTestServer()
        smtp.start()
        smtp.queue_data_responses(["451 4.3.0 Try later"])   # the first DATA fails
        smtp.reject_recipients({"bad@example.com": "550 5.1.1 No such user"})
        ...                                                   # the app sends to smtp.port
        [message] = smtp.wait_for(1)
        smtp.stop()

    A scripted DATA response, or a rejected recipient, means the message is not recorded.
    """

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, smtputf8: bool = True):
        self.host = host
        self.port = port
        # Whether EHLO offers SMTPUTF8 (RFC 6531): internationalized addresses and headers.
        self.smtputf8 = smtputf8
        self._controller: Controller | None = None
        self._lock = threading.Lock()
        self._received = threading.Condition(self._lock)
        self._messages: list[ReceivedMessage] = []
        self._data_responses: collections.deque[str] = collections.deque()
        self._rejected: dict[str, str] = {}
        self._stall_seconds = 0.0
        self._sessions: set = set()  # the open connections' SMTP protocol objects
        self._connections = 0  # connections opened since the last clear()
        self._data_begun = 0  # DATA commands received since the last clear()

    def start(self) -> None:
        """Start listening (on a free port unless one was given); the port survives restarts."""
        if self._controller is not None:
            raise RuntimeError(f"SMTP test server already running on port {self.port}")
        if self.port is None:
            self.port = _free_port(self.host)
        # A fresh Controller each time: a stopped one has closed its event loop.
        # server_hostname is fixed because the default, socket.getfqdn(), can stall on DNS.
        self._controller = _CountingController(
            self, hostname=self.host, port=self.port, server_hostname="smtp-test", enable_SMTPUTF8=self.smtputf8
        )
        self._controller.start()

    def stop(self) -> None:
        """Stop listening; connections and stalled handlers are cancelled, not waited for."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> "SmtpTestServer":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def messages(self) -> list[ReceivedMessage]:
        """A snapshot of the accepted messages, oldest first."""
        with self._lock:
            return list(self._messages)

    def clear(self) -> None:
        """Forget the messages received so far and the counts (faults stay as they are)."""
        with self._lock:
            self._messages.clear()
            self._connections = 0
            self._data_begun = 0

    @property
    def connections(self) -> int:
        """How many connections clients opened since the last clear()."""
        with self._lock:
            return self._connections

    def wait_for_data_begun(self, count: int, timeout: float = 10) -> None:
        """Block until `count` DATA commands arrived since the last clear() (the data is on its way)."""
        with self._received:
            if not self._received.wait_for(lambda: self._data_begun >= count, timeout):
                raise AssertionError(f"expected {count} DATA command(s) within {timeout} s, got {self._data_begun}")

    def drop_connections(self, reply: str | None = "421 4.4.2 smtp-test Error: timeout exceeded") -> int:
        """Close every open connection from the server's side, as a server does with idle ones.

        `reply` is written first (a real server says 421 before closing); None closes silently.
        Returns how many were closed.
        """
        with self._lock:
            sessions = list(self._sessions)
        loop = self._controller.loop
        done = threading.Event()

        def close_all():
            for session in sessions:
                if session.transport is not None:
                    if reply:
                        session.transport.write(f"{reply}\r\n".encode())
                    session.transport.close()
            done.set()

        loop.call_soon_threadsafe(close_all)
        done.wait(5)
        return len(sessions)

    def _opened(self, session) -> None:
        with self._lock:
            self._sessions.add(session)
            self._connections += 1

    def _closed(self, session) -> None:
        with self._lock:
            self._sessions.discard(session)

    def wait_for(self, count: int, timeout: float = 10) -> list[ReceivedMessage]:
        """Block until at least `count` messages arrived and return them all; fail after `timeout`."""
        with self._received:
            if not self._received.wait_for(lambda: len(self._messages) >= count, timeout):
                got = [(m.message_id, m.rcpt_tos) for m in self._messages]
                raise AssertionError(f"expected at least {count} message(s) within {timeout} s, got {len(got)}: {got}")
            return list(self._messages)

    def count_by_message_id(self) -> collections.Counter:
        """How many times each Message-ID was accepted: more than 1 is a duplicate delivery."""
        with self._lock:
            return collections.Counter(m.message_id for m in self._messages)

    def queue_data_responses(self, responses: list[str]) -> None:
        """Answer the next DATA commands with these replies, in order, instead of accepting."""
        with self._lock:
            self._data_responses.extend(responses)

    def reject_recipients(self, responses: dict[str, str]) -> None:
        """Answer RCPT TO for these addresses (any case) with the given replies."""
        with self._lock:
            self._rejected.update({address.lower(): reply for address, reply in responses.items()})

    def stall_data(self, seconds: float) -> None:
        """Wait `seconds` before answering every DATA from now on (0 to stop stalling)."""
        with self._lock:
            self._stall_seconds = seconds

    def reset_faults(self) -> None:
        """Drop scripted replies, rejections and stalls: accept everything again."""
        with self._lock:
            self._data_responses.clear()
            self._rejected.clear()
            self._stall_seconds = 0.0

    # aiosmtpd handler hooks, called on the server's event loop.

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self._lock:
            rejection = self._rejected.get(address.lower())
        if rejection:
            return rejection
        envelope.rcpt_tos.append(address)
        return ACCEPTED

    async def handle_DATA(self, server, session, envelope):
        # aiosmtpd cancels this hook when the client hangs up. Shielded, the answer still
        # happens: a client that gave up during a stall does not mean the server dropped
        # the message, and that "in doubt" case is what stalls are for. stop() still
        # cancels it, since the controller cancels every task on its loop.
        return await asyncio.shield(self._answer_data(session, envelope))

    async def _answer_data(self, session, envelope) -> str:
        with self._lock:
            stall = self._stall_seconds
            self._data_begun += 1
            self._received.notify_all()
        if stall:
            await asyncio.sleep(stall)
        received = _received(envelope, session.peer)
        with self._lock:
            if self._data_responses:
                return self._data_responses.popleft()
            self._messages.append(received)
            self._received.notify_all()
        return ACCEPTED


class _TrackedSMTP(SMTP):
    """aiosmtpd's protocol, telling the test server when a connection opens and closes."""

    def __init__(self, handler, *args, **kwargs):
        super().__init__(handler, *args, **kwargs)
        self._test_server = handler

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._test_server._opened(self)

    def connection_lost(self, error) -> None:
        self._test_server._closed(self)
        super().connection_lost(error)


class _CountingController(Controller):
    """A Controller whose connections the test server can count and close."""

    def factory(self):
        return _TrackedSMTP(self.handler, **self.SMTP_kwargs)


def _received(envelope, peer=None) -> ReceivedMessage:
    data = envelope.original_content
    message = BytesParser(policy=email.policy.default).parsebytes(data)
    return ReceivedMessage(
        mail_from=envelope.mail_from,
        rcpt_tos=list(envelope.rcpt_tos),
        data=data,
        message=message,
        message_id=str(message["Message-ID"]) if message["Message-ID"] else None,
        received_at=time.time(),
        mail_options=tuple(envelope.mail_options),
        peer=tuple(peer) if peer else None,
    )


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
