"""Rate limits: sign-in, sign-up and scheduling, shared by the pages and the API.

Sign-in has three buckets, each `LOGIN_RATE_LIMIT`, all shared by the page and the
API (switching surface buys an attacker nothing):

- per client IP, every attempt: one machine trying many accounts, or one account hard;
- per account, failures only (a 401): many machines trying one account;
- per account and IP, failures only: which addresses have failed against an account.

A full account bucket does not lock the owner out. While it is full, an address that
has failed against that account in the window gets 429; an address that has not may
still try, so the owner's correct password signs in from anywhere the attacker has
not been. A wrong password from such an address is counted against it like any other,
so an attacker with many addresses gets at most one guess per address per window at
a full account (and each address stays under its own per-IP bucket). That is the price
of nobody being able to lock anyone out; see the README ("Sign-in throttling").

Sign-up (an Argon2 hash per try) has its own bucket per IP, `SIGNUP_RATE_LIMIT`, and
scheduling one per user, `JOB_CREATE_RATE_LIMIT`; each is one bucket for the page and
the API. Counting lives in flask-limiter's storage (Redis when `REDIS_URL` is set,
else the app's MongoDB: see webapp/web/rate_limit_storage.py), never in a view's own
memory, so every process and host shares it. The client IP is the connection's, or
X-Forwarded-For's as far as `TRUSTED_PROXIES` allows (webapp/__init__.py).

Every 429 carries `Retry-After` (webapp/web/errors.py). A page passes `page=` to a
decorator to answer a breach with its own form and an inline message instead of an
error page.
"""

import math
import time

from flask import current_app
from flask import make_response
from flask import request
from flask_limiter.util import get_remote_address
from limits import parse_many

from webapp.extensions import limiter
from webapp.services.accounts.users import normalize_email
from webapp.web.negotiation import wants_json

LOGIN_MESSAGE = "Too many sign-in attempts. Wait a minute and try again."
SIGNUP_MESSAGE = "Too many sign-ups from this address."
JOB_CREATE_MESSAGE = "Too many emails scheduled in a short time."

# Bucket names (flask-limiter scopes); the exemption below reads two of them directly.
ACCOUNT_SCOPE = "login-account"
ACCOUNT_IP_SCOPE = "login-account-ip"


def _setting(name):
    """The limit string in the app config, read per request (so a test can change it)."""
    return lambda: current_app.config[name]


def account_key():
    """The normalized email being tried, from the form or the JSON body."""
    data = request.get_json(silent=True) if request.is_json else request.form
    email = data.get("email") if hasattr(data, "get") else None
    if not isinstance(email, str):
        email = ""
    return "account:" + normalize_email(email)[:320]


def ip_key():
    return "ip:" + (get_remote_address() or "unknown")


def account_ip_key():
    """One account tried from one address."""
    return account_key() + "|" + ip_key()


def failed_sign_in(response):
    """Only a refused password counts (401): not a success, a 422 typo, or a 429."""
    return response.status_code == 401


def _bucket(key, scope):
    """The identifiers flask-limiter files a shared limit's counter under."""
    prefix = current_app.config.get("RATELIMIT_KEY_PREFIX")
    return [prefix, key, scope] if prefix else [key, scope]


def address_is_clean_at_a_full_account():
    """True when the account's failure bucket is full but this address has not failed there.

    The per-account bucket's `exempt_when`: such an attempt skips that bucket (and is not
    counted in it), so the owner can sign in while someone else hammers the account. It
    reads the same storage as the buckets, through `limiter.limiter` (which is the
    in-memory fallback while the storage is down, like the buckets themselves).
    """
    if request.method != "POST":
        return False  # showing the sign-in page is not an attempt: no storage reads
    strategy = limiter.limiter
    account = _bucket(account_key(), ACCOUNT_SCOPE)
    pair = _bucket(account_ip_key(), ACCOUNT_IP_SCOPE)
    items = parse_many(current_app.config["LOGIN_RATE_LIMIT"])
    if all(strategy.test(item, *account) for item in items):
        return False  # not full: the bucket applies (and lets this attempt through)
    return all(strategy.get_window_stats(item, *pair).remaining >= item.amount for item in items)


def retry_after_seconds(request_limit):
    """Whole seconds until the breached limit's window ends (at least 1): the `Retry-After` value.

    A minute when that cannot be read (the storage went away since the breach was counted):
    the 429 must still go out, never a 500.
    """
    if request_limit is None:
        return 60
    try:
        reset_time = request_limit.window.reset_time
    except Exception:  # noqa: BLE001 - any storage error; the refusal stands either way
        return 60
    return max(1, math.ceil(reset_time - time.time()))


def in_words(seconds):
    """ "in 40 seconds", "in 3 minutes", "in 2 hours": when to try again, for people."""
    if seconds < 90:
        return f"in {seconds} second{'s' if seconds != 1 else ''}"
    if seconds < 2 * 3600:
        return f"in {math.ceil(seconds / 60)} minutes"
    return f"in {math.ceil(seconds / 3600)} hours"


def _inline(page, message):
    """flask-limiter's `on_breach`: a page's own 429 (its form with `message`) instead of an error page.

    The API (and a page that passed no `page`) gets None: webapp.web.errors answers with the
    JSON error shape or the error page. Either way webapp.web.errors adds `Retry-After`.
    """

    def on_breach(request_limit):
        if page is None or wants_json():
            return None
        text = f"{message} Try again {in_words(retry_after_seconds(request_limit))}."
        return make_response(page(text), 429)

    return on_breach


def login_throttled(page=None):
    """Throttle POSTs per IP, per account and per account+IP (429 beyond the limit).

    `page(message)` renders the sign-in form with `message` for a refused page post.
    """
    on_breach = _inline(page, "Too many sign-in attempts.")

    def decorate(view):
        limit = _setting("LOGIN_RATE_LIMIT")
        per_ip = limiter.shared_limit(
            limit, scope="login-ip", key_func=ip_key, methods=["POST"], error_message=LOGIN_MESSAGE, on_breach=on_breach
        )
        per_account = limiter.shared_limit(
            limit,
            scope=ACCOUNT_SCOPE,
            key_func=account_key,
            methods=["POST"],
            deduct_when=failed_sign_in,
            exempt_when=address_is_clean_at_a_full_account,
            error_message=LOGIN_MESSAGE,
            on_breach=on_breach,
        )
        per_account_ip = limiter.shared_limit(
            limit,
            scope=ACCOUNT_IP_SCOPE,
            key_func=account_ip_key,
            methods=["POST"],
            deduct_when=failed_sign_in,
            error_message=LOGIN_MESSAGE,
            on_breach=on_breach,
        )
        return per_ip(per_account(per_account_ip(view)))

    return decorate


def signup_throttled(page=None):
    """Throttle account creation per IP (`SIGNUP_RATE_LIMIT`), page and API alike (each try costs a hash)."""
    return limiter.shared_limit(
        _setting("SIGNUP_RATE_LIMIT"),
        scope="signup-ip",
        key_func=ip_key,
        methods=["POST"],
        error_message=f"{SIGNUP_MESSAGE} Try again later.",
        on_breach=_inline(page, SIGNUP_MESSAGE),
    )


def job_create_throttled(user_id, page=None):
    """Throttle scheduling per user (`JOB_CREATE_RATE_LIMIT`), page and API in one bucket.

    `user_id()` names the signed-in user; put this decorator inside the one that signs
    the user in, so it runs after authentication.
    """
    return limiter.shared_limit(
        _setting("JOB_CREATE_RATE_LIMIT"),
        scope="job-create",
        key_func=lambda: f"user:{user_id()}",
        methods=["POST"],
        error_message=f"{JOB_CREATE_MESSAGE} Wait a little and try again.",
        on_breach=_inline(page, JOB_CREATE_MESSAGE),
    )
