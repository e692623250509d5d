"""The API blueprint and the helpers its views share."""

from functools import wraps

from flask import Blueprint
from flask import request
from flask_jwt_extended import current_user
from flask_jwt_extended import verify_jwt_in_request

from webapp.services.errors import AppError
from webapp.services.errors import Forbidden

bp = Blueprint("api", __name__, url_prefix="/api")


def json_body():
    """The request's JSON; malformed, missing or too deeply nested JSON is a clear 400.

    (Too deep a nesting reads as malformed because of webapp.web.errors.JSONProvider.)
    """
    if not request.is_json:
        raise AppError(
            "Send a JSON body with Content-Type: application/json.", code="unsupported_media_type", status=415
        )
    data = request.get_json(silent=True)
    if data is None:
        raise AppError("The request body is not valid JSON.", code="malformed_json", status=400)
    return data


def login_required(view):
    """Bearer token required; the user is loaded fresh, so role changes apply at once."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        verify_jwt_in_request()
        return view(*args, **kwargs)

    wrapper.auth_required = "bearer"  # read by webapp/api/openapi.py: security and 401
    return wrapper


def admin_required(view):
    """Bearer token of an admin required (403 for other users)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        verify_jwt_in_request()
        if not current_user.is_admin:
            raise Forbidden("Admins only.")
        return view(*args, **kwargs)

    wrapper.auth_required = "admin"  # read by webapp/api/openapi.py: security, 401 and 403
    return wrapper
