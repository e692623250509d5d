"""Accounts: register, authenticate, roles, token revocation."""

import re

from bson import ObjectId
from bson.errors import InvalidId
from mongoengine.errors import NotUniqueError

from webapp.models import RevokedToken
from webapp.models import Role
from webapp.models import User
from webapp.models import Window
from webapp.services.accounts.passwords import hash_password
from webapp.services.accounts.passwords import verify_password
from webapp.services.errors import Conflict
from webapp.services.errors import NotFound
from webapp.services.errors import ValidationFailed
from webapp.timeutil import as_utc
from webapp.timeutil import utcnow

# The token ids flask-jwt-extended issues (uuid4): safe as a key of User.revoked_tokens.
_JTI = re.compile(r"[0-9a-f-]{1,64}")


def normalize_email(email):
    """Accounts are keyed by the lower-cased address."""
    return email.strip().lower()


def parse_object_id(value, what="resource"):
    """Turn a path id into an ObjectId; a malformed id is simply not found."""
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        raise NotFound(f"No such {what}.") from None


def register(email, password, timezone="UTC"):
    """Create a `user` account; a taken email is a 409."""
    user = User(email=normalize_email(email), password_hash=hash_password(password), timezone=timezone)
    try:
        user.save(force_insert=True)
    except NotUniqueError:
        raise Conflict("An account with this email already exists.", {"email": "is already registered"}) from None
    return user


def check_sign_in(email, password):
    """(account, why_not) for a sign-in: why_not is None when it may sign in (same cost either way).

    `account` is the account the email names, if any, even when refused, so the audit log
    can say whose it was; `why_not` is for the log, never for the person signing in (they
    get one answer for all three: wrong email or password).
    """
    account = User.objects(email=normalize_email(email)).first()
    ok = verify_password(account.password_hash if account else None, password)
    if account is None:
        return None, "no account with this email"
    if not ok:
        return account, "wrong password"
    if account.disabled:
        return account, "account disabled"
    return account, None


def authenticate(email, password):
    """Return the user for these credentials, or None (wrong password, unknown email or disabled account)."""
    account, why_not = check_sign_in(email, password)
    return None if why_not else account


def get_user(user_id):
    """Load a user by id (str or ObjectId), or None."""
    try:
        return User.objects(id=ObjectId(user_id)).first()
    except (InvalidId, TypeError):
        return None


def get_user_for_session(session_id):
    """The user a browser session ("<user id>:<generation>") belongs to, or None.

    None when the account is gone, disabled, or has signed out since the session began
    (its generation moved on), so a session cookie kept after sign-out opens nothing.
    """
    user_id, _, generation = (session_id or "").partition(":")
    if not generation.isdigit():
        return None  # a malformed id, or one from before generations: sign in again
    user = get_user(user_id)
    if user is None or user.disabled or (user.session_generation or 0) != int(generation):
        return None
    return user


def end_browser_sessions(user):
    """Invalidate every browser session of `user` (sign-out): their ids no longer match.

    One atomic increment in the user document; API tokens are not affected (they are
    revoked one by one, see revoke_token).
    """
    User.objects(id=user.id).update_one(inc__session_generation=1)


def find_user_by_email(email):
    """Load a user by email, or None."""
    return User.objects(email=normalize_email(email)).first()


def owner_id_for(value):
    """Resolve an owner filter (a user id or an email) to an id; None means no filter.

    An unknown owner gives False, which callers treat as "matches no job".
    """
    value = (value or "").strip()
    if not value:
        return None
    user = find_user_by_email(value) if "@" in value else get_user(value)
    return user.id if user else False


def emails_by_id(user_ids):
    """Map user ids to emails in one query (for tables that show each job's owner); none for no ids."""
    user_ids = list(set(user_ids))
    if not user_ids:
        return {}  # an empty table: no round trip (an empty `$in` is also a scan on FerretDB's SQLite)
    users = User.objects(id__in=user_ids).only("email")
    return {user.id: user.email for user in users}


def count_admins():
    """How many admins can act (enabled ones): the last one cannot be demoted or disabled."""
    return User.objects(role=Role.ADMIN, disabled__ne=True).count()


def list_users(page, per_page):
    """Users, oldest first, one page, and the total (on the (created_at, _id) index; _id settles ties)."""
    query = User.objects.order_by("created_at", "id")
    return list(query.skip((page - 1) * per_page).limit(per_page)), query.count()


def set_role(user_id, role):
    """Change a user's role; the last admin cannot be demoted (409).

    Demotion is checked again after the write and undone if two admins
    demoted each other at once, so the system never ends with no admin.
    """
    if role not in Role.ALL:
        raise ValidationFailed("Unknown role.", {"role": "must be 'user' or 'admin'"})
    user = User.objects(id=parse_object_id(user_id, "user")).first()
    if user is None:
        raise NotFound("No such user.")
    if user.role == role:
        return user
    if role == Role.USER and not user.disabled and count_admins() <= 1:
        raise Conflict("The last admin cannot be demoted; promote someone else first.")
    User.objects(id=user.id).update_one(set__role=role)
    if role == Role.USER and count_admins() == 0:
        User.objects(id=user.id).update_one(set__role=Role.ADMIN)
        raise Conflict("The last admin cannot be demoted; promote someone else first.")
    user.reload()
    return user


def set_timezone(user, timezone):
    """Remember the browser's time zone so pages show the user's local times."""
    User.objects(id=user.id).update_one(set__timezone=timezone)
    user.timezone = timezone


def update_settings(user, settings):
    """Set the account's zone and/or default windows (a validated AccountSettings); the fresh user."""
    given = settings.model_fields_set
    updates = {}
    if "timezone" in given:
        updates["set__timezone"] = settings.timezone
    if "windows" in given:
        updates["set__windows"] = [Window(**window.model_dump()) for window in settings.windows]
    if not updates:
        raise ValidationFailed("Nothing to change.", {"body": "give timezone and/or windows"})
    User.objects(id=user.id).update_one(**updates)
    user.reload()
    return user


def create_or_promote_admin(email, password=None):
    """Make `email` an admin: create the account if needed (password required then)."""
    user = find_user_by_email(email)
    if user is None:
        if not password:
            raise ValidationFailed("A password is needed to create the account.", {"password": "is required"})
        user = register(email, password)
    User.objects(id=user.id).update_one(set__role=Role.ADMIN)
    user.reload()
    return user


# In every token issued since revocations moved to the user document: where to look for a logout.
REVOCATION_CLAIM = "rvk"
REVOKED_ON_ACCOUNT = "account"


def token_claims():
    """Extra claims for a new API token (see REVOCATION_CLAIM)."""
    return {REVOCATION_CLAIM: REVOKED_ON_ACCOUNT}


def revoke_token(user, jti, expires_at, now=None):
    """Remember a logged-out token on its user until it would have expired anyway.

    One write: the jti is set as a key of `revoked_tokens` (so logging out
    twice, or two logouts at once, lose nothing), and entries of tokens that
    have expired since are removed in the same write.
    """
    if not _JTI.fullmatch(jti):
        raise ValueError(f"not a token id this app issues: {jti!r}")
    now = now or utcnow()
    expired = {
        f"revoked_tokens.{old}": ""
        for old, until in (user.revoked_tokens or {}).items()
        if as_utc(until) <= now and old != jti
    }
    update = {"$set": {f"revoked_tokens.{jti}": expires_at}}
    if expired:
        update["$unset"] = expired
    User._get_collection().update_one({"_id": user.id}, update)


def is_token_revoked(user, claims):
    """True if the token with these claims was logged out; `user` is the account it names (or None).

    The answer is in the user document, which the request reads anyway. Tokens
    issued before that (no REVOCATION_CLAIM) are also looked up where earlier
    versions recorded their logout, one read more, until they expire.
    """
    if user is not None and claims["jti"] in (user.revoked_tokens or {}):
        return True
    if claims.get(REVOCATION_CLAIM) == REVOKED_ON_ACCOUNT:
        return False
    return RevokedToken.objects(jti=claims["jti"]).only("id").first() is not None


def purge_expired_revocations(now=None):
    """Delete revocations of expired tokens kept the earlier way (RevokedToken); returns how many."""
    return RevokedToken.objects(expires_at__lt=now or utcnow()).delete()
