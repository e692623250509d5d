"""Configuration: every value comes from the environment, with safe dev defaults.

`Config.from_env()` reads the environment once; the subclasses only change
defaults. Production refuses to start with the dev secrets (see `check`).
"""

import os
from datetime import timedelta
from pathlib import Path

from dotenv import dotenv_values
from limits import parse_many

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Dev defaults are public (they are in .env.example); production must override them.
# tasks/queue.py keeps its own copy of DEV_SECRET_KEY: it must not import Flask.
DEV_SECRET_KEY = "dev-secret-key-change-me-in-production"
DEV_JWT_SECRET_KEY = "dev-jwt-secret-change-me-in-production"
# Where `make run` starts its embedded FerretDB when MONGODB_URI is unset.
DEFAULT_FERRETDB_PORT = 27017


def env_bool(name, default=False):
    """Parse a boolean from the environment: `MAIL_USE_TLS=0` must mean False."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name}={raw!r} is not a boolean (use true/false)")


def env_int(name, default):
    """Parse an integer from the environment with a clear error."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None


def env_float(name, default):
    """Parse a float from the environment with a clear error."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None


def env_str(name, default=None):
    """Read a string; an empty value counts as unset."""
    raw = os.environ.get(name)
    return raw if raw not in (None, "") else default


def embedded_mongodb_uri(port=DEFAULT_FERRETDB_PORT):
    """The URI of `make run`'s embedded FerretDB listening on 127.0.0.1:`port`."""
    return f"mongodb://127.0.0.1:{port}/mailjobs"


def mongodb_uri(environ=None, dotenv_path=None):
    """The database every entry point uses: MONGODB_URI, else the embedded FerretDB's URI.

    Each variable comes from the environment, else from the project's `.env` (the real
    environment wins, as with `make run`), so the web app, the consumer, the `flask` CLI and
    the dev stack agree on one database however they were started: FERRETDB_PORT=27555 in
    `.env` or in the shell moves all of them, not only the server `make run` starts.
    """
    environ = os.environ if environ is None else environ
    dotenv_path = PROJECT_ROOT / ".env" if dotenv_path is None else Path(dotenv_path)
    from_file = dotenv_values(dotenv_path) if dotenv_path.is_file() else {}

    def setting(name):
        value = environ[name] if name in environ else from_file.get(name)
        return value or None  # empty counts as unset

    uri = setting("MONGODB_URI")
    if uri:
        return uri
    raw_port = setting("FERRETDB_PORT") or str(DEFAULT_FERRETDB_PORT)
    try:
        port = int(raw_port)
    except ValueError:
        raise ValueError(f"FERRETDB_PORT={raw_port!r} is not an integer") from None
    if not 0 < port < 65536:
        raise ValueError(f"FERRETDB_PORT={port} is not a TCP port")
    return embedded_mongodb_uri(port)


class Config:
    """Settings shared by every environment."""

    ENV_NAME = "development"
    TESTING = False

    def __init__(self):
        self.SECRET_KEY = env_str("SECRET_KEY", DEV_SECRET_KEY)
        self.JWT_SECRET_KEY = env_str("JWT_SECRET_KEY", DEV_JWT_SECRET_KEY)
        self.JWT_ACCESS_TOKEN_EXPIRES = timedelta(seconds=env_int("JWT_ACCESS_TOKEN_EXPIRES", 3600))
        self.JWT_TOKEN_LOCATION = ["headers"]
        self.JWT_ERROR_MESSAGE_KEY = "message"

        self.MONGODB_URI = mongodb_uri()
        self.REDIS_URL = env_str("REDIS_URL")

        mail_server = env_str("MAIL_SERVER")
        self.MAIL_SERVER = mail_server or "127.0.0.1"
        self.MAIL_PORT = env_int("MAIL_PORT", 25 if mail_server else 8025)
        self.MAIL_USE_TLS = env_bool("MAIL_USE_TLS")
        self.MAIL_USE_SSL = env_bool("MAIL_USE_SSL")
        # With TLS, the server's certificate and host name are verified (webapp/mail/tls.py):
        # against the system's CAs, or those in MAIL_TLS_CA_FILE; false is an explicit, logged opt-out.
        self.MAIL_TLS_VERIFY = env_bool("MAIL_TLS_VERIFY", True)
        self.MAIL_TLS_CA_FILE = env_str("MAIL_TLS_CA_FILE")
        self.MAIL_USERNAME = env_str("MAIL_USERNAME")
        self.MAIL_PASSWORD = env_str("MAIL_PASSWORD")
        self.MAIL_DEFAULT_SENDER = env_str("MAIL_DEFAULT_SENDER", "scheduler@localhost")
        self.MAIL_TIMEOUT = env_float("MAIL_TIMEOUT", 30.0)
        # How long a worker thread keeps its SMTP connection for the next message (0: close each time).
        self.MAIL_IDLE_SECONDS = env_float("MAIL_IDLE_SECONDS", 5.0)

        # Delivery rules (see webapp/services/delivery/rules.py).
        self.LEASE_SECONDS = env_float("LEASE_SECONDS", 6.0)
        self.MAX_ATTEMPTS = env_int("MAX_ATTEMPTS", 5)
        self.RETRY_BASE_SECONDS = env_float("RETRY_BASE_SECONDS", 30.0)
        self.RETRY_CAP_SECONDS = env_float("RETRY_CAP_SECONDS", 3600.0)
        self.IN_DOUBT_POLICY = env_str("IN_DOUBT_POLICY", "resend")
        self.SCHEDULE_LEAD_SECONDS = env_float("SCHEDULE_LEAD_SECONDS", 1.0)
        # Recurring schedules (webapp/services/recurring/occurrences.py): an occurrence more than this late
        # when planned was missed, and the catch-up rule decides; the grace of catch-up expiries.
        self.SCHEDULE_MISFIRE_SECONDS = env_float("SCHEDULE_MISFIRE_SECONDS", 60.0)

        # The status page and /metrics (see webapp/services/monitoring/stats.py, tasks/maintenance.py).
        self.HEARTBEAT_SECONDS = env_float("HEARTBEAT_SECONDS", 2.0)
        self.OVERDUE_SECONDS = env_float("OVERDUE_SECONDS", 300.0)
        self.METRICS_TOKEN = env_str("METRICS_TOKEN")
        # How old the counts per status over all jobs may get (webapp/services/monitoring/job_counts.py); 0 counts every read.
        self.JOB_COUNTS_SECONDS = env_float("JOB_COUNTS_SECONDS", 5.0)
        # Days a finished job is kept after its last change; the sweep deletes older ones (0 keeps them all).
        self.RETENTION_DAYS = env_int("RETENTION_DAYS", 90)

        # Bodies are capped at 100 KB; the request cap leaves room for JSON around it.
        self.MAX_CONTENT_LENGTH = env_int("MAX_CONTENT_LENGTH", 512 * 1024)
        self.LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
        # Rate limits are counted where every web process and host sees them, and a restart
        # forgets nothing: Redis, else the app's MongoDB (webapp/web/rate_limit_storage.py).
        self.RATELIMIT_STORAGE_URI = self.REDIS_URL or "mongoengine://"
        self.RATELIMIT_STRATEGY = "fixed-window"  # the one strategy the MongoDB storage has
        # The storage down must not take logins down with it: count in memory (per process) meanwhile.
        self.RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
        # Limits (flask-limiter syntax, e.g. "10 per minute" or "10/minute;100/day"), see webapp/web/throttle.py.
        self.LOGIN_RATE_LIMIT = env_str("LOGIN_RATE_LIMIT", "10 per minute")  # per client IP and per account
        self.SIGNUP_RATE_LIMIT = env_str("SIGNUP_RATE_LIMIT", "30 per hour")  # per client IP
        self.JOB_CREATE_RATE_LIMIT = env_str("JOB_CREATE_RATE_LIMIT", "120 per minute")  # per user
        # How many reverse proxies in front of the app add to X-Forwarded-For; 0 ignores the header.
        self.TRUSTED_PROXIES = env_int("TRUSTED_PROXIES", 0)
        # Most PENDING jobs one account may have (0: no quota); admins count too unless exempted.
        self.MAX_PENDING_JOBS_PER_USER = env_int("MAX_PENDING_JOBS_PER_USER", 1000)
        self.QUOTA_EXEMPT_ADMINS = env_bool("QUOTA_EXEMPT_ADMINS", False)
        # Days the audit log keeps an entry (0: forever); the periodic sweep deletes older ones.
        self.AUDIT_RETENTION_DAYS = env_int("AUDIT_RETENTION_DAYS", 365)
        self.MAIL_SUPPRESS_SEND = False
        self.WTF_CSRF_TIME_LIMIT = None
        # The session cookie of the pages: not readable by scripts, not sent on cross-site posts.
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"

    def check(self):
        """Refuse settings that would be unsafe here; returns self for chaining."""
        if self.IN_DOUBT_POLICY not in {"resend", "hold"}:
            raise ValueError(f"IN_DOUBT_POLICY must be 'resend' or 'hold', not {self.IN_DOUBT_POLICY!r}")
        if self.MAX_ATTEMPTS < 1:
            raise ValueError("MAX_ATTEMPTS must be at least 1")
        if self.SCHEDULE_MISFIRE_SECONDS <= 0:
            raise ValueError("SCHEDULE_MISFIRE_SECONDS must be above 0")
        if self.LEASE_SECONDS < 1:
            raise ValueError("LEASE_SECONDS must be at least 1 (it is renewed every third of it)")
        if self.MAIL_TLS_CA_FILE and not os.path.isfile(self.MAIL_TLS_CA_FILE):
            raise ValueError(
                f"MAIL_TLS_CA_FILE={self.MAIL_TLS_CA_FILE!r} is not a file "
                "(the PEM file of the CA that signed the SMTP server's certificate)"
            )
        if self.MAIL_IDLE_SECONDS < 0:
            raise ValueError("MAIL_IDLE_SECONDS must be 0 (no reuse) or more")
        if self.HEARTBEAT_SECONDS <= 0 or self.OVERDUE_SECONDS < 0:
            raise ValueError("HEARTBEAT_SECONDS must be above 0 and OVERDUE_SECONDS at least 0")
        if self.JOB_COUNTS_SECONDS < 0:
            raise ValueError("JOB_COUNTS_SECONDS must be 0 or more")
        for name in ("TRUSTED_PROXIES", "MAX_PENDING_JOBS_PER_USER", "AUDIT_RETENTION_DAYS", "RETENTION_DAYS"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more")
        for name in ("LOGIN_RATE_LIMIT", "SIGNUP_RATE_LIMIT", "JOB_CREATE_RATE_LIMIT"):
            try:
                parse_many(getattr(self, name))
            except ValueError:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is not a rate limit "
                    "(flask-limiter syntax: '10 per minute', '5/second;100/day')"
                ) from None
        return self


class DevConfig(Config):
    """Local development: the embedded stack, dev secrets allowed."""


class TestConfig(Config):
    """The test suite: same rules, quicker retries so fault tests finish fast."""

    ENV_NAME = "testing"
    TESTING = True


class ProdConfig(Config):
    """Production: secrets must be real and long."""

    ENV_NAME = "production"

    def __init__(self):
        super().__init__()
        self.SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)

    def check(self):
        super().check()
        for name, dev_value in (("SECRET_KEY", DEV_SECRET_KEY), ("JWT_SECRET_KEY", DEV_JWT_SECRET_KEY)):
            value = getattr(self, name)
            if value == dev_value or value.startswith("dev-") or len(value) < 32:
                raise RuntimeError(
                    f"{name} is the dev default or shorter than 32 characters: "
                    "set a long random value in the environment before running in production"
                )
        return self


CONFIGS = {"development": DevConfig, "testing": TestConfig, "production": ProdConfig}


def load_config(env_name=None):
    """Build the config for APP_ENV (development, testing, production) and check it."""
    name = env_name or env_str("APP_ENV", "development")
    if name not in CONFIGS:
        raise ValueError(f"APP_ENV must be one of {sorted(CONFIGS)}, not {name!r}")
    return CONFIGS[name]().check()
