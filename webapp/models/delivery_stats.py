"""Delivery figures (sent, failed, retried, lateness) as counters in documents found by `_id`.

Consumers do not write per job: each process adds up its outcomes in memory
and its maintenance thread `$inc`s them here once per heartbeat
(webapp.services.monitoring.delivery_stats). Three kinds of document, told apart by `_id`:

- `YYYY-MM-DDTHH` (kind `hour`): per minute of that hour, `mMM.sent`,
  `mMM.failed`, `mMM.retried`, the lateness histogram `mMM.late.bN` and
  `mMM.late_max`: the last-60-minutes chart and lateness read two of these;
- `YYYY-MM-DD` (kind `day`): the day's `sent`, `failed`, `retried`, its
  histogram and `late_max`: the 30-day chart reads thirty of these;
- `totals`: the same since the beginning, for the Prometheus counters.

Hours and days are UTC. An hour document holds at most 60 minutes, so a write
or a read never handles a whole day's minutes (FerretDB rewrites and decodes
the whole document each time).
"""

from mongoengine import DynamicDocument
from mongoengine import StringField


class DeliveryStats(DynamicDocument):
    """One hour, one day, or the totals; the counters are dynamic fields."""

    id = StringField(primary_key=True)
    kind = StringField()

    meta = {"collection": "delivery_stats"}
