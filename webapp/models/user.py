"""Accounts: the same documents back the API (JWT) and the pages (sessions)."""

from mongoengine import BooleanField
from mongoengine import DateTimeField
from mongoengine import Document
from mongoengine import EmbeddedDocumentListField
from mongoengine import IntField
from mongoengine import MapField
from mongoengine import StringField

from webapp.models.window import Window
from webapp.timeutil import utcnow


class Role:
    """The two roles; kept as plain strings so the JSON shape stays obvious."""

    USER = "user"
    ADMIN = "admin"
    ALL = (USER, ADMIN)


class User(Document):
    """A person who schedules email; `role` gates the admin surface."""

    email = StringField(required=True, unique=True, max_length=320)
    password_hash = StringField(required=True)
    role = StringField(required=True, choices=Role.ALL, default=Role.USER)
    timezone = StringField(default="UTC", max_length=64)
    # Default availability windows for jobs created without any (webapp.services.scheduling.timing).
    windows = EmbeddedDocumentListField(Window)
    created_at = DateTimeField(required=True, default=utcnow)
    # Part of every browser session's id (see get_id): signing out adds one, which ends
    # every session cookie issued before, even a copy someone kept.
    session_generation = IntField(required=True, default=0, min_value=0)
    # Carried by every API token as its `gen` claim; disabling adds one, which ends every
    # token issued before for good (enabling again does not bring them back).
    token_generation = IntField(default=0, min_value=0)
    # An admin switched the account off: no sign-in, its tokens and sessions refused, its
    # jobs held (webapp/services/accounts/disabling.py). Read by the per-request user loaders.
    disabled = BooleanField(default=False)
    # Change marks (webapp/services/jobs/change_marks.py): moved on whenever one of this account's jobs
    # changes (`jobs_mark`), and for admins whenever any job changes (`all_jobs_mark`). Read with the
    # account on every request, they let an unchanged table answer its poll with no other query.
    jobs_mark = IntField(default=0)
    all_jobs_mark = IntField(default=0)
    # API tokens this account logged out: {jti: when the token expires anyway}. Kept here so the
    # one read that loads a token's user also says whether the token was revoked (and a Redis
    # restart forgets nothing); entries already expired are dropped at the next logout.
    revoked_tokens = MapField(DateTimeField(), default=dict)

    meta = {
        "collection": "users",
        "indexes": [
            "role",
            # The admin's list of accounts, oldest first (_id settles ties, so pages are stable).
            ("created_at", "id"),
        ],
    }

    # What flask-login asks of a signed-in user, answered here so the model imports no Flask
    # (a disabled account is refused by the user loader, webapp/auth/session.py, not here).
    is_authenticated = True
    is_active = True
    is_anonymous = False

    @property
    def is_admin(self):
        return self.role == Role.ADMIN

    def get_id(self):
        """The id flask-login keeps in the session cookie: "<user id>:<session generation>".

        The user loader gives the session back only while the account's generation still
        matches (webapp/auth/session.py), at no cost beyond the read it does anyway.
        """
        return f"{self.id}:{self.session_generation or 0}"
