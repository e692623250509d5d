"""Jobs per status over all jobs, counted now and then and kept in one document read by `_id`."""

from mongoengine import DateTimeField
from mongoengine import DictField
from mongoengine import Document
from mongoengine import FloatField
from mongoengine import StringField

ALL_JOBS = "all"


class JobCounts(Document):
    """`_id: "all"`: `counts` per status as of `counted_at` (webapp.services.monitoring.job_counts), `took_ms` to count."""

    id = StringField(primary_key=True, default=ALL_JOBS)
    counts = DictField()
    counted_at = DateTimeField()
    took_ms = FloatField()

    meta = {"collection": "job_counts"}
