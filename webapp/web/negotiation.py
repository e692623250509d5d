"""JSON or a page: the one place that decides which a request gets."""

from flask import request


def wants_json():
    """API paths always get JSON; pages get HTML."""
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"
