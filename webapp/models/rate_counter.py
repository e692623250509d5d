"""Rate-limit counters of the embedded stack, shared by every web process (webapp/web/rate_limit_storage.py)."""

from mongoengine import DateTimeField
from mongoengine import Document
from mongoengine import IntField
from mongoengine import StringField


class RateCounter(Document):
    """One fixed window of one limit: `count` hits until `expire_at`, keyed by the limit's key.

    No TTL index (FerretDB v1 does not implement `expireAfterSeconds`): an expired
    counter reads as empty and is reset in place by the next hit; the periodic sweep
    deletes old ones through the `expire_at` index.
    """

    key = StringField(primary_key=True)
    count = IntField(required=True, default=0)
    expire_at = DateTimeField(required=True)

    meta = {"collection": "rate_limits", "indexes": ["expire_at"]}
