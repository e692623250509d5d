"""Flask extensions, created bare here and bound to the app by `create_app`."""

from flask_htmx import HTMX
from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_mail import Mail
from flask_wtf.csrf import CSRFProtect

from webapp import rate_limit_storage  # noqa: F401 - registers the `mongoengine://` limits storage

jwt = JWTManager()
login_manager = LoginManager()
mail = Mail()
csrf = CSRFProtect()
htmx = HTMX()
# No default limits: each throttled view says what it needs.
limiter = Limiter(key_func=get_remote_address)
