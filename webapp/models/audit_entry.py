"""The audit log: who did what to whom, when, from where, and how it went."""

from mongoengine import DateTimeField
from mongoengine import Document
from mongoengine import ObjectIdField
from mongoengine import StringField

from webapp.timeutil import utcnow


class AuditEntry(Document):
    """One security-relevant event. Written only by webapp.services.audit.record, never updated.

    The actor's email is kept as it was (and, for a sign-in, as it was typed), so an
    entry still reads right after the account changes or is gone. Nothing secret is
    stored: `record` takes no request data, only the fields below.
    """

    at = DateTimeField(required=True, default=utcnow)
    action = StringField(required=True, max_length=64)
    outcome = StringField(required=True, max_length=16)  # success | failure
    actor_id = ObjectIdField()
    actor_email = StringField(max_length=320)
    target_type = StringField(max_length=16)  # user | job | token | delivery
    target_id = StringField(max_length=64)
    target_label = StringField(max_length=320)
    ip = StringField(max_length=64)
    detail = StringField(max_length=500)

    meta = {
        "collection": "audit_log",
        "indexes": [
            # Newest first, whole log; the retention purge (at < cutoff) uses it too.
            ("-at", "-id"),
            # Newest first by actor (id or email) and by action, and by both at once.
            ("actor_id", "-at", "-id"),
            ("actor_email", "-at", "-id"),
            ("action", "-at", "-id"),
            ("actor_id", "action", "-at", "-id"),
            ("actor_email", "action", "-at", "-id"),
        ],
    }
