"""An availability window, embedded in jobs, schedules and accounts (see webapp.services.scheduling.timing)."""

from mongoengine import EmbeddedDocument
from mongoengine import ListField
from mongoengine import StringField


class Window(EmbeddedDocument):
    """On each of `days` (mon..sun), from `start` to `end` (HH:MM wall times in the owner's zone)."""

    days = ListField(StringField(max_length=3), required=True)
    start = StringField(required=True, max_length=5)
    end = StringField(required=True, max_length=5)

    def as_dict(self):
        """The API's shape."""
        return {"days": list(self.days), "start": self.start, "end": self.end}
