"""The first admin from ADMIN_EMAIL / ADMIN_PASSWORD, made safe to run at every start.

`make run` calls `ensure_admin` each time the stack starts. It only ever adds: it never
demotes anyone, never changes a password, and promotes an existing account only when
ADMIN_PASSWORD is that account's password (whoever signed up with the address first
must not become admin just because the address is in someone's `.env`).
"""

from webapp.models import Role
from webapp.models import User
from webapp.services import validation
from webapp.services.accounts import users
from webapp.services.accounts.passwords import verify_password
from webapp.services.errors import Conflict
from webapp.services.errors import ValidationFailed

CREATED = "created"
PROMOTED = "promoted"
ALREADY_ADMIN = "already_admin"
NOT_PROMOTED = "not_promoted"


def ensure_admin(email, password):
    """Make sure `email` is an admin; return (outcome, user), outcome one of the constants above.

    - no such account: it is created as an admin with `password` (CREATED);
    - an admin already: left exactly as it is, password included (ALREADY_ADMIN);
    - a user whose password is `password`: promoted (PROMOTED);
    - a user with another password: left as it is (NOT_PROMOTED); an operator can still
      promote it on purpose with `flask --app wsgi create-admin EMAIL`.

    An invalid email, or a password the sign-up form would refuse, raises ValidationFailed
    before anything is written. Safe to run twice, or twice at once.
    """
    user = users.find_user_by_email(email or "")
    if user is not None and user.role == Role.ADMIN:
        return ALREADY_ADMIN, user
    if not password:
        raise ValidationFailed(
            "ADMIN_PASSWORD is needed to create or promote the admin.", {"ADMIN_PASSWORD": "is required"}
        )
    validation.parse(validation.Credentials, {"email": email, "password": password})
    outcome = PROMOTED
    if user is None:
        try:
            user = users.register(email, password)
            outcome = CREATED
        except Conflict:  # created at this very moment by another start: judge that account
            user = users.find_user_by_email(email)
            if user.role == Role.ADMIN:
                return ALREADY_ADMIN, user
    if outcome == PROMOTED and not verify_password(user.password_hash, password):
        return NOT_PROMOTED, user
    User.objects(id=user.id).update_one(set__role=Role.ADMIN)
    user.reload()
    return outcome, user
