"""Recurring schedules: a cron expression in a zone whose occurrences become ordinary jobs.

The materializer (webapp.services.recurring.schedules) turns occurrences into jobs ahead of time: the
next one always exists as a PENDING job, so it goes out on time through the normal job path.
`cursor_at` is the last occurrence time considered (made or skipped by the catch-up rule);
`planned` the occurrences of the latest plan, kept until their jobs are surely inserted (a
materializer that dies half-way leaves them for the next one); `due_at` when a materializer
must look at the schedule next (None while paused or finished). Every change a person makes
bumps `version`, which is part of each occurrence job's `_id`, so a plan made for an older
version can never be mistaken for the current one.
"""

from mongoengine import DateTimeField
from mongoengine import Document
from mongoengine import EmbeddedDocumentListField
from mongoengine import IntField
from mongoengine import ListField
from mongoengine import ObjectIdField
from mongoengine import StringField

from webapp.models.window import Window
from webapp.timeutil import utcnow


class ScheduleStatus:
    """active: occurrences are made; paused: none are; finished: `until` or `max_runs` reached."""

    ACTIVE = "active"
    PAUSED = "paused"
    FINISHED = "finished"
    ALL = (ACTIVE, PAUSED, FINISHED)


class CatchUp:
    """What happens to occurrences missed while nothing could make or send them."""

    NONE = "none"  # skip them
    LATEST = "latest"  # send the most recent one
    ALL = "all"  # send every one
    CHOICES = (NONE, LATEST, ALL)


class Schedule(Document):
    """Send `subject`/`body` to `to` at every time `cron` names in `timezone`."""

    owner_id = ObjectIdField(required=True)
    to = ListField(StringField(max_length=320), required=True)
    subject = StringField(required=True, max_length=998)
    body = StringField(required=True)
    cron = StringField(required=True, max_length=200)
    timezone = StringField(required=True, max_length=64)
    windows = EmbeddedDocumentListField(Window)
    starts_at = DateTimeField()
    until = DateTimeField()
    max_runs = IntField(min_value=1)
    catch_up = StringField(required=True, choices=CatchUp.CHOICES, default=CatchUp.LATEST)
    status = StringField(required=True, choices=ScheduleStatus.ALL, default=ScheduleStatus.ACTIVE)
    version = IntField(required=True, default=0)
    runs = IntField(required=True, default=0)
    cursor_at = DateTimeField(required=True)
    planned = ListField(DateTimeField())
    plan_id = StringField()  # the latest plan's token: a plan is stored only over the one it read
    due_at = DateTimeField()
    due_after_plan = DateTimeField()
    next_made_at = DateTimeField()
    last_run_at = DateTimeField()
    created_at = DateTimeField(required=True, default=utcnow)
    updated_at = DateTimeField(required=True, default=utcnow)

    meta = {
        "collection": "schedules",
        "indexes": [
            # A user's schedules, and everyone's (the admin), newest first; _id settles ties in index order.
            ("owner_id", "-created_at", "-id"),
            ("-created_at", "-id"),
            # The materializer's query: {due_at: {$lte: now}}, soonest first.
            "due_at",
        ],
    }
