"""The sign-in pages' blueprint and the redirect rule they share."""

from urllib.parse import urlsplit

from flask import Blueprint
from flask import url_for

bp = Blueprint("auth", __name__)


def safe_next(target):
    """`target` if it is a path on this site, else the jobs page (no open redirects).

    A control character (a CR or LF from a crafted link) is refused too: it cannot go
    into a Location header, and werkzeug would fail the whole response over it.
    """
    if target and not any(ord(char) < 32 or ord(char) == 127 for char in target):
        parts = urlsplit(target)
        if target.startswith("/") and not target.startswith(("//", "/\\")) and not parts.scheme and not parts.netloc:
            return target
    return url_for("pages.jobs_page")
