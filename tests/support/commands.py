"""Every MongoDB command the test process sends, when asked: pymongo command monitoring.

conftest registers RECORDER before any client exists, so every client of the suite (the app's
mongoengine connection included) reports to it; it keeps nothing until a test asks:

    with RECORDER.recording() as sent:
        client.get("/jobs/rows", headers=...)
    assert [c.name for c in sent.in_this_thread()] == ["find"]

Commands are kept with the thread that sent them, so a background thread (the change-marks
flusher, the driver's monitors) does not count against a request made in the test's thread.
"""

import contextlib
import threading
from dataclasses import dataclass

from pymongo import monitoring

# The driver's own traffic, never a query of the app's.
DRIVER_COMMANDS = {"hello", "ismaster", "isMaster", "ping", "endSessions", "saslStart", "saslContinue", "buildInfo"}


@dataclass(frozen=True)
class Sent:
    """One command as sent: its name, its collection (if any), the command document, the sending thread."""

    name: str
    collection: object
    command: dict
    thread: int


class Recording(list):
    """The commands sent while recording."""

    def in_this_thread(self, thread=None):
        thread = thread or threading.get_ident()
        return [sent for sent in self if sent.thread == thread]


class CommandRecorder(monitoring.CommandListener):
    """Keeps the commands started while a `recording()` is open."""

    def __init__(self):
        self._lock = threading.Lock()
        self._open = []

    @contextlib.contextmanager
    def recording(self):
        recording = Recording()
        with self._lock:
            self._open.append(recording)
        try:
            yield recording
        finally:
            with self._lock:
                self._open.remove(recording)

    def started(self, event):
        if event.command_name in DRIVER_COMMANDS or not self._open:
            return
        target = event.command.get(event.command_name)
        sent = Sent(
            event.command_name, target if isinstance(target, str) else None, dict(event.command), threading.get_ident()
        )
        with self._lock:
            for recording in self._open:
                recording.append(sent)

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


RECORDER = CommandRecorder()
