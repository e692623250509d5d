"""Sign up, sign in, sign out: browser sessions (flask-login) on the API's accounts."""

from webapp.auth import views  # noqa: F401 - registers routes
from webapp.auth.blueprint import bp
from webapp.auth.session import register_login_callbacks

__all__ = ["bp", "register_login_callbacks"]
