"""Cron expressions evaluated in a time zone. Pure functions.

Parsing and wall-clock iteration are cronsim's (healthchecks.io's cron evaluator: Debian cron's
semantics, so a restricted day-of-month and day-of-week match when either does). We accept the
standard 5 fields only: minute, hour, day of month, month, day of week, each a list of `*`,
numbers, names (jan..dec, sun..sat), ranges and steps; cronsim would also take a sixth
(seconds) field and the L / W / # extensions, which we refuse.

cronsim walks naive wall-clock times; each becomes an instant by the one DST rule of
webapp.services.scheduling.timing (a skipped wall time moves forward by the gap, a repeated one is its
first occurrence). Two wall times can then give the same instant (02:30 and 03:30 on the
spring day in Berlin), and a skipped one can come after a later wall time's instant, so the
instants are put back in order and repeats dropped before they are handed out.
"""

import heapq
import re
from datetime import datetime
from datetime import timedelta

from cronsim import CronSim
from cronsim import CronSimError

from webapp.services.scheduling.timing import wall_of
from webapp.services.scheduling.timing import wall_to_utc
from webapp.timeutil import as_utc

_PART = re.compile(r"(\*|[0-9a-z]+(-[0-9a-z]+)?)(/[0-9]+)?")
_NAMES = {
    3: {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"},
    4: {"sun", "mon", "tue", "wed", "thu", "fri", "sat"},
}
FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")
MAX_CRON_CHARS = 200
# Any start will do to let cronsim check an expression.
_EPOCH = datetime(2000, 1, 1)


def parse_cron(text):
    """Check a 5-field cron expression; return it normalized (lower case, single spaces).

    ValueError with a message for a person: the wrong number of fields, a part cron does not
    know, a value out of range, or a date that never comes (`0 0 30 2 *`).
    """
    if not isinstance(text, str) or len(text) > MAX_CRON_CHARS:
        raise ValueError(f"must be a cron expression of at most {MAX_CRON_CHARS} characters")
    typed = text.split()
    fields = [field.lower() for field in typed]
    if len(fields) != 5:
        raise ValueError(f"must have 5 fields (minute hour day-of-month month day-of-week), not {len(fields)}")
    for index, field in enumerate(fields):
        for part in field.split(","):
            match = _PART.fullmatch(part)
            words = set(re.findall(r"[a-z]+", part))
            if not match or words - _NAMES.get(index, set()):
                raise ValueError(
                    f"the {FIELD_NAMES[index]} field {typed[index]!r} is not standard cron "
                    "(numbers, names, *, ranges a-b, lists a,b and steps /n)"
                )
    expression = " ".join(fields)
    try:
        CronSim(expression, _EPOCH)
    except CronSimError as exc:
        raise ValueError(f"is not valid cron: {str(exc).lower()}") from None
    return expression


def _walls(expression, start_wall):
    """Naive wall times matching `expression`, strictly after `start_wall`, in order."""
    try:
        yield from CronSim(expression, start_wall)
    except (StopIteration, OverflowError):  # nothing in 50 years, or past year 9999
        return


def occurrences_after(expression, tz, after):
    """The instants (aware UTC) at which `expression` fires in `tz`, strictly after `after`, in order.

    Endless for most expressions: take what you need (see next_runs).
    """
    after = as_utc(after)
    # Start on the wall clock a little before `after`: a skipped wall time just before it may
    # have moved forward past it. The gap is at most the rise of the offset over the last days.
    rise = max(timedelta(0), after.astimezone(tz).utcoffset() - (after - timedelta(days=2)).astimezone(tz).utcoffset())
    start_wall = wall_of(after, tz) - rise - timedelta(minutes=1)
    pending: list = []  # (instant, the wall time it shows): found, not yet known to be the next
    last = after
    for wall in _walls(expression, start_wall):
        # Any wall time from here on gives an instant no earlier than one whose own wall time is
        # behind us, so those are final.
        while pending and pending[0][1] <= wall:
            instant, _ = heapq.heappop(pending)
            if instant > last:
                last = instant
                yield instant
        try:
            instant = wall_to_utc(wall, tz)
        except OverflowError:
            break
        if instant > last:
            heapq.heappush(pending, (instant, wall_of(instant, tz)))
    while pending:
        instant, _ = heapq.heappop(pending)
        if instant > last:
            last = instant
            yield instant


def next_runs(expression, tz, after, count=5, until=None):
    """The next `count` instants after `after`, none later than `until` (if given)."""
    runs = []
    for instant in occurrences_after(expression, tz, after):
        if until is not None and instant > as_utc(until):
            break
        runs.append(instant)
        if len(runs) >= count:
            break
    return runs


def occurrence_after(expression, tz, after):
    """The first instant strictly after `after`, or None if there is none within 50 years."""
    return next(iter(occurrences_after(expression, tz, after)), None)
