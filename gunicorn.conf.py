"""gunicorn settings for every way the web app runs: `make run`, the Dockerfile and compose.

    gunicorn --config gunicorn.conf.py wsgi:app [--bind 127.0.0.1:5000]

Worker class: gevent. Each connection is a greenlet, so a client that connects and
trickles (or never finishes) its request headers costs a greenlet and a socket, not a
worker: two idle sockets took the site down under the `sync` workers, and gunicorn 27's
`gthread` workers read the headers in a pool thread too (measured: 10 sockets with
partial headers against 2 workers x 4 threads held /api/health past 20 s).

The gevent worker wraps the read of every request's headers, the first one included, in
`keepalive` seconds: that is both how long an idle kept-alive connection stays open and
how long a client has to send its headers before it is dropped. Up to
`worker_connections` connections per worker are served at once.

Only the standard library is imported here: gunicorn reads this file in the master,
before the workers monkey-patch the standard library for gevent, and importing the app
(or ssl, through pymongo) first would make that patching unreliable.
"""

import os


def _whole(name, default, minimum):
    """A whole number from the environment (empty = default), with a clear error."""
    raw = os.environ.get(name) or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ValueError(f"{name}={value} must be at least {minimum}")
    return value


# Compose listens on every interface of the container; `make run` passes --bind 127.0.0.1:PORT.
bind = f"0.0.0.0:{_whole('PORT', 5000, 1)}"
workers = _whole("WEB_CONCURRENCY", 2, 1)
worker_class = "gevent"
worker_connections = _whole("WEB_WORKER_CONNECTIONS", 1000, 1)
# At least 1: with 0 the gevent worker would wait for headers forever.
keepalive = _whole("WEB_KEEPALIVE", 5, 1)
# A worker whose loop is stuck this long (a request hogging the CPU) is replaced.
timeout = 30
graceful_timeout = 30
# gunicorn 27 otherwise puts every instance's control socket at ~/.gunicorn/gunicorn.ctl.
control_socket_disable = True
accesslog = "-"
