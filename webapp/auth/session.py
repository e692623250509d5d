"""flask-login hooks and the two moments a browser session changes hands: sign-in and sign-out.

The account is loaded fresh on every request, and a session is only good while the
account's session generation matches the one in its cookie (webapp/models/user.py).
"""

from urllib.parse import urlsplit

from flask import current_app
from flask import flash
from flask import g
from flask import make_response
from flask import redirect
from flask import request
from flask import session
from flask import url_for
from flask_login import login_user
from flask_login import logout_user

from webapp.extensions import htmx
from webapp.services.accounts import users


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
    def load_user(session_id):
        # None for a signed-out generation: flask-login then treats the visitor as a stranger.
        return users.get_user_for_session(session_id)

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


def _rotate_csrf_token():
    """Drop the session's CSRF secret, so the next page gets a new one (flask-wtf makes it).

    A token seen before sign-in (or by whoever used the browser before) is then worthless.
    """
    field_name = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    session.pop(field_name, None)
    g.pop(field_name, None)  # flask-wtf caches this request's signed token here


def sign_in(user):
    """Start a browser session for `user`, with a fresh CSRF token."""
    _rotate_csrf_token()
    login_user(user)


def sign_out(user):
    """End `user`'s browser sessions on the server, then this one's cookie and CSRF token.

    The generation moves on, so this session cookie (and any copy of it) stops working,
    and so do the user's sessions in other browsers: signing out signs out everywhere.
    """
    if user.is_authenticated:
        users.end_browser_sessions(user)
    logout_user()
    _rotate_csrf_token()
