"""Make recurring schedules' occurrences into jobs and queue them (thin: the rules live in
webapp.services.recurring.occurrences). Called by the periodic sweep, every consumer's maintenance
thread and the views that create or change a schedule; any number at once is safe.
"""

import logging

from tasks.delivery import schedule_delivery
from webapp.services.recurring import occurrences
from webapp.timeutil import utcnow

log = logging.getLogger(__name__)


def queue_made(app, made):
    """Queue each occurrence job for its effective send time."""
    for job_id, effective in made:
        schedule_delivery(job_id, effective, app.config["SCHEDULE_LEAD_SECONDS"])
    return len(made)


def materialize_due(app, now=None):
    """Make and queue the occurrences of every due schedule; how many jobs were made."""
    made = occurrences.materialize_due(now or utcnow(), occurrences.MaterializeSettings.from_config(app.config))
    if made:
        log.info("schedules: %d occurrence(s) made", len(made))
    return queue_made(app, made)


def materialize_schedule(app, schedule_id, now=None):
    """Make and queue the next occurrence of one schedule (after a create or a change)."""
    settings = occurrences.MaterializeSettings.from_config(app.config)
    return queue_made(app, occurrences.materialize_schedule(schedule_id, now or utcnow(), settings))
