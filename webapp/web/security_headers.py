"""Security headers on every response.

The CSP allows scripts and styles from our own origin only: no inline
script, no eval (htmx runs with `allowEval: false`, see templates/base.html),
so even markup that slipped past escaping could not run code; no site may
frame ours (`frame-ancestors 'none'`, and X-Frame-Options for old browsers).

Referrer-Policy `strict-origin-when-cross-origin`: other sites see our origin,
never a path (job ids are in paths). Not `no-referrer`: flask-wtf checks the
Referer of HTTPS form posts against our host, and would refuse every form.

Permissions-Policy switches off the browser features we never use, so a
script that slipped in could not ask for them either.

`Cache-Control: no-store` on every API answer (tokens, people's jobs) and on
every page shown to a signed-in person, so neither a shared cache nor the
browser's history (the Back button after signing out on a shared computer)
keeps a copy.
"""

from flask import request
from flask import session

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    ]
)

PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "autoplay",
        "camera",
        "display-capture",
        "encrypted-media",
        "fullscreen",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "picture-in-picture",
        "publickey-credentials-get",
        "screen-wake-lock",
        "serial",
        "usb",
        "xr-spatial-tracking",
    )
)


def _private():
    """An API answer, or a page for a signed-in person (flask-login's id in the session)."""
    if request.path.startswith("/api/"):
        return True
    return request.endpoint != "static" and "_user_id" in session


def init_app(app):
    """Add the headers after every request (a view may set its own first)."""

    @app.after_request
    def security_headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        headers.setdefault("X-Frame-Options", "DENY")
        if _private():
            headers["Cache-Control"] = "no-store"
        return response
