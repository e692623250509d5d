"""The domain's exceptions: a rule said no. No dependencies, so every layer may raise them.

Each carries the HTTP status and stable code the API answers with (the web layer's
handlers in webapp.web.errors turn them into JSON or a page), so a service says what
went wrong once and every surface reports it the same way.
"""


class AppError(Exception):
    """A rule said no: carries the HTTP status, a stable code and per-field messages."""

    status = 400
    code = "bad_request"

    def __init__(self, message, fields=None, code=None, status=None, retry_after=None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        # Seconds, sent as `Retry-After` (every 429 has one).
        self.retry_after = retry_after
        if code:
            self.code = code
        if status:
            self.status = status


class ValidationFailed(AppError):
    status = 422
    code = "validation_failed"


class NotFound(AppError):
    status = 404
    code = "not_found"


class Conflict(AppError):
    status = 409
    code = "conflict"


class Forbidden(AppError):
    status = 403
    code = "forbidden"


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"


class QuotaExceeded(AppError):
    """A limit on what an account may hold (not how fast it asks): 429 `quota_exceeded`."""

    status = 429
    code = "quota_exceeded"
