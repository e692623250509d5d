"""Login throttling, shared by the sign-in page and the API's login.

Sign-in has two buckets, both `LOGIN_RATE_LIMIT`: one per client IP (one machine trying
many accounts) and one per account (many machines trying one account). Both
are shared between the page and the API, so switching surface buys an
attacker nothing. Sign-up (an Argon2 hash per try) is limited per IP with the
same value, one bucket for the page and the API. Storage is Redis when `REDIS_URL` is set (see config).
"""

from flask import current_app
from flask import request
from flask_limiter.util import get_remote_address

from webapp.extensions import limiter
from webapp.services.accounts import normalize_email

MESSAGE = "Too many sign-in attempts. Wait a minute and try again."


def _limit():
    return current_app.config["LOGIN_RATE_LIMIT"]


def account_key():
    """The normalized email being tried, from the form or the JSON body."""
    data = request.get_json(silent=True) if request.is_json else request.form
    email = data.get("email") if hasattr(data, "get") else None
    if not isinstance(email, str):
        email = ""
    return "account:" + normalize_email(email)[:320]


def ip_key():
    return "ip:" + (get_remote_address() or "unknown")


def login_throttled(view):
    """Throttle POSTs to `view` per IP and per account (429 beyond the limit)."""
    per_account = limiter.shared_limit(_limit, scope="login-account", key_func=account_key, methods=["POST"],
                                       error_message=MESSAGE)
    per_ip = limiter.shared_limit(_limit, scope="login-ip", key_func=ip_key, methods=["POST"],
                                  error_message=MESSAGE)
    return per_ip(per_account(view))


def signup_throttled(view):
    """Throttle account creation per IP, page and API alike (each try costs a password hash)."""
    return limiter.shared_limit(_limit, scope="signup-ip", key_func=ip_key, methods=["POST"],
                                error_message="Too many sign-ups from here. Wait a minute and try again.")(view)
