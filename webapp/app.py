"""The app factory: `create_app()` builds the web app; worker.py builds the consumers' with it."""

import logging

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from webapp import db
from webapp.admin import bp as admin_bp
from webapp.api import bp as api_bp
from webapp.auth import bp as auth_bp
from webapp.auth import register_login_callbacks
from webapp.cli import register_commands
from webapp.config import PROJECT_ROOT
from webapp.config import load_config
from webapp.extensions import csrf
from webapp.extensions import htmx
from webapp.extensions import jwt
from webapp.extensions import limiter
from webapp.extensions import login_manager
from webapp.extensions import mail
from webapp.mail.tls import warn_if_unverified
from webapp.metrics import bp as metrics_bp
from webapp.pages import bp as pages_bp
from webapp.web import security_headers
from webapp.web import templating
from webapp.web.errors import register_error_handlers
from webapp.web.jwt_callbacks import register_jwt_callbacks


def create_app(config=None):
    """Build the app from `config` (a Config object) or from the environment."""
    config = config or load_config()
    app = Flask(__name__, template_folder=str(PROJECT_ROOT / "templates"), static_folder="static")
    app.config.from_object(config)
    configure_logging(app.config["LOG_LEVEL"])
    trust_proxies(app, app.config["TRUSTED_PROXIES"])
    register_extensions(app)
    warn_if_unverified(app.config)  # the web app and every consumer (it builds this app at start)
    register_blueprints(app)

    register_error_handlers(app)

    register_commands(app)
    return app


def configure_logging(level):
    """One line per event: our loggers go to the root handler, huey's keeps its own."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    huey_logger = logging.getLogger("huey")
    if huey_logger.handlers:  # the consumer set up its own handler: don't print twice
        huey_logger.propagate = False


def trust_proxies(app, count):
    """Behind `count` reverse proxies, take the client address from X-Forwarded-For.

    The proxies each append the address they saw; ProxyFix takes the one the
    outermost trusted proxy added. With 0 the header is ignored: anyone can send it,
    and a forged one would buy a fresh rate-limit bucket per request.
    """
    if count:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count)


def register_extensions(app):

    db.init_app(app)
    jwt.init_app(app)
    register_jwt_callbacks(jwt)
    login_manager.init_app(app)
    register_login_callbacks(login_manager)
    mail.init_app(app)
    csrf.init_app(app)
    htmx.init_app(app)
    limiter.init_app(app)


def register_blueprints(app):

    # Bearer tokens are not sent by browsers on their own: the API needs no CSRF token.
    csrf.exempt(api_bp)
    app.register_blueprint(api_bp)
    # The pages: every form and HTMX request carries the CSRF token (see templates/base.html).
    app.register_blueprint(auth_bp)
    app.register_blueprint(pages_bp)
    app.register_blueprint(admin_bp)
    # Prometheus scrapes /metrics with a token or from loopback (see webapp/metrics.py).
    app.register_blueprint(metrics_bp)
    templating.init_app(app)
    security_headers.init_app(app)
