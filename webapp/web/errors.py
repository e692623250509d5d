"""Errors: one shape for the API (`{"error": {code, message, fields}}`), pages for people.

`webapp.web.negotiation.wants_json` is the one place that decides between the two.
"""

import logging

from flask import make_response
from flask import render_template
from flask import request
from flask.json.provider import DefaultJSONProvider
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from webapp.services.errors import AppError
from webapp.web.negotiation import wants_json

log = logging.getLogger(__name__)


def error_body(code, message, fields=None):
    """The API's error document."""
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def json_error(status, code, message, fields=None):
    """An API error response."""
    return error_body(code, message, fields), status


def _http_code(exc):
    return (exc.name or "error").lower().replace(" ", "_").replace("'", "")


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, except that JSON nested too deeply to parse is malformed JSON.

    The parser recurses once per level: `[[[[...]]]]` 100,000 deep raises
    RecursionError, which werkzeug's `get_json` does not catch (only
    ValueError), so it escaped as a 500 from every JSON endpoint and from the
    login throttle's key. As a ValueError it is what it is: a 400, or None for
    `get_json(silent=True)`.
    """

    def loads(self, s, **kwargs):
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


def register_error_handlers(app):
    """Map every error to JSON or a page, never a stack trace (bad JSON included: see JSONProvider)."""
    app.json = JSONProvider(app)

    @app.errorhandler(AppError)
    def handle_app_error(exc):
        if wants_json():
            response = make_response(json_error(exc.status, exc.code, exc.message, exc.fields))
        else:
            response = make_response(
                render_template("errors/error.html", status=exc.status, message=exc.message), exc.status
            )
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(RateLimitExceeded)
    def handle_rate_limited(exc):
        # A page's own answer (its form with an inline message, see webapp.web.throttle), else ours.
        from webapp.extensions import limiter  # noqa: PLC0415 - webapp.throttle imports this module
        from webapp.web.throttle import retry_after_seconds  # noqa: PLC0415

        if exc.response is not None:
            response = exc.response
        elif wants_json():
            response = make_response(json_error(429, "too_many_requests", exc.description))
        else:
            response = make_response(render_template("errors/error.html", status=429, message=exc.description), 429)
        response.headers["Retry-After"] = str(retry_after_seconds(limiter.current_limit))
        return response

    @app.errorhandler(CSRFError)
    def handle_csrf_error(exc):
        # flask-wtf's own words ("The CSRF token is missing.") do not tell a person what to do.
        message = (
            "This form was not accepted because its security token is missing or out of date. "
            "Go back, reload the page and try again."
        )
        if wants_json():
            return json_error(400, "csrf_failed", message)
        return render_template("errors/error.html", status=400, title="Form expired", message=message), 400

    @app.errorhandler(HTTPException)
    def handle_http_error(exc):
        # Keep the exception's own headers (a 405's `Allow`, RFC 9110), not its Content-Type.
        headers = [(name, value) for name, value in exc.get_headers() if name.lower() != "content-type"]
        if wants_json():
            body, status = json_error(exc.code, _http_code(exc), exc.description or exc.name)
            return body, status, headers
        return render_template("errors/error.html", status=exc.code, message=exc.description), exc.code, headers

    @app.errorhandler(Exception)
    def handle_unexpected(exc):
        log.exception("unhandled error on %s %s", request.method, request.path)
        if wants_json():
            return json_error(500, "internal_error", "Something went wrong on our side.")
        return render_template("errors/error.html", status=500, message="Something went wrong on our side."), 500
