"""The Flask app the tasks run in, and who is running them.

The tasks never build the app (that would tie the queue to the factory and make an
import circle): the entry module that starts a consumer, `worker.py`, builds it once and
binds it here, as Flask's Celery example does. The CLI binds its own app before it sweeps.
"""

import os
import socket
import threading

_bound_app = None


def bind(app):
    """Make `app` the one the tasks of this process run in."""
    global _bound_app
    _bound_app = app


def bound_app():
    """The app `bind` was given; a clear error if the process started without one."""
    if _bound_app is None:
        raise RuntimeError("no app bound for the tasks: start consumers with `huey_consumer worker.huey`")
    return _bound_app


def worker_id():
    """host:pid:thread, so the job history says which worker made each attempt."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"
