"""The sign-in pages' blueprint and the redirect rule they share."""

from urllib.parse import urlsplit

from flask import Blueprint
from flask import url_for

bp = Blueprint("auth", __name__)


def safe_next(target):
    """`target` if it is a path on this site, else the jobs page (no open redirects)."""
    if target:
        parts = urlsplit(target)
        if target.startswith("/") and not target.startswith(("//", "/\\")) and not parts.scheme and not parts.netloc:
            return target
    return url_for("pages.jobs_page")
