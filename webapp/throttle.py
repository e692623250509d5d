"""Login throttling, shared by the sign-in page and the API's login.

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

Sign-up (an Argon2 hash per try) is limited per IP with the same value, one bucket for
the page and the API. Counting lives in flask-limiter's storage (Redis when `REDIS_URL`
is set, see config), never in a view's own memory, so it is shared by every process
that shares the storage.
"""

from flask import current_app
from flask import request
from flask_limiter.util import get_remote_address
from limits import parse_many

from webapp.extensions import limiter
from webapp.services.accounts import normalize_email

MESSAGE = "Too many sign-in attempts. Wait a minute and try again."

# Bucket names (flask-limiter scopes); the exemption below reads two of them directly.
ACCOUNT_SCOPE = "login-account"
ACCOUNT_IP_SCOPE = "login-account-ip"


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
    in-memory fallback while Redis is down, like the buckets themselves).
    """
    if request.method != "POST":
        return False  # showing the sign-in page is not an attempt: no storage reads
    strategy = limiter.limiter
    account = _bucket(account_key(), ACCOUNT_SCOPE)
    pair = _bucket(account_ip_key(), ACCOUNT_IP_SCOPE)
    items = parse_many(_limit())
    if all(strategy.test(item, *account) for item in items):
        return False  # not full: the bucket applies (and lets this attempt through)
    return all(strategy.get_window_stats(item, *pair).remaining >= item.amount for item in items)


def login_throttled(view):
    """Throttle POSTs to `view` per IP, per account and per account+IP (429 beyond the limit)."""
    per_ip = limiter.shared_limit(_limit, scope="login-ip", key_func=ip_key, methods=["POST"],
                                  error_message=MESSAGE)
    per_account = limiter.shared_limit(_limit, scope=ACCOUNT_SCOPE, key_func=account_key, methods=["POST"],
                                       deduct_when=failed_sign_in, exempt_when=address_is_clean_at_a_full_account,
                                       error_message=MESSAGE)
    per_account_ip = limiter.shared_limit(_limit, scope=ACCOUNT_IP_SCOPE, key_func=account_ip_key, methods=["POST"],
                                          deduct_when=failed_sign_in, error_message=MESSAGE)
    return per_ip(per_account(per_account_ip(view)))


def signup_throttled(view):
    """Throttle account creation per IP, page and API alike (each try costs a password hash)."""
    return limiter.shared_limit(_limit, scope="signup-ip", key_func=ip_key, methods=["POST"],
                                error_message="Too many sign-ups from here. Wait a minute and try again.")(view)
