"""Revoked JWTs, kept in MongoDB so a logout survives a Redis restart."""

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
