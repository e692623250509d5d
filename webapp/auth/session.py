"""flask-login hooks: load the account fresh on every request, send strangers to sign in."""

from urllib.parse import urlsplit

from flask import flash
from flask import make_response
from flask import redirect
from flask import request
from flask import url_for

from webapp.extensions import htmx
from webapp.services import accounts


def _return_path():
    """Where to come back after signing in: the page being viewed, not a fragment."""
    if htmx and htmx.current_url:
        parts = urlsplit(htmx.current_url)
        return parts.path + (f"?{parts.query}" if parts.query else "")
    if request.method == "GET":
        return request.full_path.rstrip("?")
    return None


def register_login_callbacks(login_manager):
    """Wire flask-login to our accounts; roles are re-read per request, so changes apply at once."""

    @login_manager.user_loader
    def load_user(user_id):
        return accounts.get_user(user_id)

    @login_manager.unauthorized_handler
    def sign_in_first():
        target = url_for("auth.login", next=_return_path())
        if htmx:
            # A redirect inside an HTMX request would swap the sign-in page into a table.
            response = make_response("", 401)
            response.headers["HX-Redirect"] = target
            return response
        flash("Please sign in to see that page.", "info")
        return redirect(target)
