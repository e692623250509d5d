"""The admin blueprint; every route behind it is for signed-in admins only."""

from flask import Blueprint
from flask import current_app
from flask_login import current_user

from webapp.services.errors import Forbidden

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def admins_only():
    """Checked for the whole blueprint, so a new admin route cannot forget it.

    The role is read from the database on every request (flask-login's user
    loader), so a demotion takes effect on the next click.
    """
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    if not current_user.is_admin:
        raise Forbidden("This page is for admins only.")
    return None
