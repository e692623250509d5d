"""The Flask app a worker process uses for config, mail and the database.

Built lazily, once per process, on first use by a task, never at import
time: importing `tasks` from the web app must not build a second app.
"""

import os
import socket
import threading

_app = None
_lock = threading.Lock()


def worker_app():
    """The process's app, created on first call."""
    global _app
    if _app is None:
        with _lock:
            if _app is None:
                from webapp import create_app  # noqa: PLC0415 - deferred on purpose, see module doc

                _app = create_app()
    return _app


def worker_id():
    """host:pid:thread, so the job history says which worker made each attempt."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"
