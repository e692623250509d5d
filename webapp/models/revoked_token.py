"""Revoked JWTs as earlier versions kept them: one document per logged-out token.

Logouts are now kept on the user document (User.revoked_tokens). This
collection is still read for tokens issued before that change (they lack the
claim webapp.services.accounts.users.REVOCATION_CLAIM), until they expire, and the
sweep deletes its expired documents, so it empties itself within
JWT_ACCESS_TOKEN_EXPIRES of the upgrade.
"""

from mongoengine import DateTimeField
from mongoengine import Document
from mongoengine import StringField


class RevokedToken(Document):
    """One logged-out token; deleted by the sweeper once the token has expired anyway.

    No TTL index: FerretDB v1 does not implement `expireAfterSeconds`.
    """

    jti = StringField(required=True, unique=True)
    expires_at = DateTimeField(required=True)

    meta = {"collection": "revoked_tokens", "indexes": ["expires_at"]}
