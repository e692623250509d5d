"""The admin status page's board: the figures, two charts, the headline, and an ETag.

The page and its polling fragment are built from the same `StatusBoard`, and
the ETag is computed from what the board shows before anything is rendered,
so an unchanged poll is a 304 with no body (webapp.web.htmx.render_if_changed).
Figures that move by themselves every second (the seconds since a live
worker's last beat, the overdue backlog's age to the second) are shown at a
coarser grain, so they do not defeat the 304.
"""

from dataclasses import dataclass
from datetime import date

from tasks.queue import queue_depth
from webapp.admin.charts import stacked_bars
from webapp.services.monitoring import stats as stats_service
from webapp.timeutil import as_utc
from webapp.timeutil import isoformat_z
from webapp.timeutil import parse_iso8601
from webapp.web.htmx import etag_of
from webapp.web.localtime import zone
from webapp.web.templating import viewer_zone


@dataclass
class StatusBoard:
    """What the status page shows."""

    stats: stats_service.Stats
    throughput: object
    history: object
    etag: str = ""

    @property
    def overdue_minutes(self):
        """How long the oldest overdue job has waited, in whole minutes (None without backlog)."""
        seconds = self.stats.overdue["oldest_seconds"]
        return None if seconds is None else int(seconds // 60)

    @property
    def problems(self):
        """What is wrong right now, worst first, in words for the headline (empty: all is well)."""
        found = []
        if self.stats.pause["paused"]:
            found.append("Delivery is paused: nothing is handed to the SMTP server until it is resumed.")
        if not self.stats.workers_alive:
            found.append("No consumer is alive: nothing is being sent.")
        if self.stats.smtp["ok"] is False:
            found.append("The SMTP server's last answer was an error (see SMTP below).")
        if self.stats.overdue["count"]:
            found.append(f"{self.stats.overdue['count']} job(s) are overdue.")
        return found


def _minute_label(iso, zone_name):
    return as_utc(parse_iso8601(iso)).astimezone(zone(zone_name)).strftime("%H:%M")


def _day_label(day):
    return date.fromisoformat(day).strftime("%d %b")


def build(config):
    """Read the figures and lay out the board for the viewer."""
    figures = stats_service.collect(config["OVERDUE_SECONDS"], queue_depth(), config["JOB_COUNTS_SECONDS"])
    zone_name = viewer_zone()
    throughput = stacked_bars(
        "throughput", figures.per_minute, [_minute_label(point["minute"], zone_name) for point in figures.per_minute]
    )
    history = stacked_bars("history", figures.per_day, [_day_label(point["day"]) for point in figures.per_day])
    board = StatusBoard(figures, throughput, history)
    board.etag = fingerprint(board, zone_name, shows_counted_at=bool(config["JOB_COUNTS_SECONDS"]))
    return board


def fingerprint(board, zone_name, shows_counted_at=False):
    """The ETag: every figure the board shows, at the grain it shows it, and the viewer's zone.

    `shows_counted_at`: the board says when the kept job counts were counted (JOB_COUNTS_SECONDS > 0).
    """
    figures = board.stats
    shown_workers = [
        (
            record["_id"],
            record["alive"],
            record.get("threads"),
            tuple(record.get("in_flight") or ()),
            isoformat_z(record.get("started_at")),
            None if record["alive"] else isoformat_z(record.get("beat_at")),
        )
        for record in figures.workers
    ]
    return etag_of(
        sorted(figures.counts.items()),
        figures.overdue["count"],
        board.overdue_minutes,
        figures.per_minute,
        figures.per_day,
        sorted(figures.lateness.items()),
        shown_workers,
        sorted(figures.queue.items()),
        sorted(figures.pause.items()),
        repr(figures.smtp),
        figures.overdue_seconds,
        zone_name,
        isoformat_z(figures.counted_at) if shows_counted_at else None,
    )
