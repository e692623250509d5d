"""Flask extensions, created bare here and bound to the app by `create_app`."""

from flask_htmx import HTMX
from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_mail import Mail as FlaskMail
from flask_wtf.csrf import CSRFProtect

from webapp.mail.tls import TlsSettings
from webapp.web import rate_limit_storage  # noqa: F401 - registers the `mongoengine://` limits storage


class Mail(FlaskMail):
    """flask-mail whose state also carries how the server's certificate is verified (MAIL_TLS_*)."""

    def init_mail(self, config, debug=False, testing=False):
        """flask-mail's settings plus `tls` (webapp.mail.tls.TlsSettings)."""
        state = super().init_mail(config, debug, testing)
        state.tls = TlsSettings.from_config(config)
        return state


jwt = JWTManager()
login_manager = LoginManager()
mail = Mail()
csrf = CSRFProtect()
htmx = HTMX()
# No default limits: each throttled view says what it needs.
limiter = Limiter(key_func=get_remote_address)
