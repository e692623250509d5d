"""The live job tables behind "My jobs" and the admin panel: one page of rows, counts, an ETag.

The page and its polling fragment are built from the same `JobTable`, so the
ETag a page is rendered with is the one its first poll is checked against. The
ETag's mark (`table_mark`) needs nothing but the viewer's account, which every
request has read already: an unchanged poll is answered from it (webapp/web/polling.py).

What each table reads: a user's table, one page of their jobs and their counts per
status (two queries, each on an index that starts with owner_id), the total taken from
the counts; the admin's, one page of everyone's jobs and the counts over all jobs as
webapp.services.monitoring.job_counts keeps them (a read by `_id`).
"""

from dataclasses import dataclass
from dataclasses import field
from datetime import timedelta
from math import ceil

from flask import url_for

from webapp.models import JobStatus
from webapp.services.accounts import users
from webapp.services.jobs import actions
from webapp.services.monitoring import job_counts
from webapp.services.validation import parse_page
from webapp.timeutil import isoformat_z
from webapp.timeutil import utcnow
from webapp.web import polling
from webapp.web.htmx import etag_of
from webapp.web.templating import viewer_zone

PER_PAGE = 20


@dataclass
class JobTable:
    """What a job table shows; `endpoint` / `rows_endpoint` name the page and its polling fragment."""

    endpoint: str
    rows_endpoint: str
    items: list
    total: int
    page: int
    per_page: int
    counts: dict
    filters: dict = field(default_factory=dict)
    owner_emails: dict = field(default_factory=dict)
    owner_unknown: bool = False
    mark: str = ""
    etag: str = ""
    counted_at: object = None

    @property
    def pages(self):
        return max(1, ceil(self.total / self.per_page))

    @property
    def status(self):
        return self.filters.get("status", "")

    @property
    def overdue(self):
        return self.filters.get("overdue") == "1"

    @property
    def has_active(self):
        """True while a job on the account (or anywhere, for admins) can still change by itself."""
        return any(self.counts.get(status) for status in actions.ACTIVE)

    def url(self, endpoint=None, **changes):
        """This table's URL with some filters or the page changed (empty values dropped)."""
        args = {**self.filters, "page": self.page, **changes}
        if args.get("page") == 1:
            args.pop("page")
        if self.per_page != PER_PAGE:
            args.setdefault("per_page", self.per_page)
        return url_for(endpoint or self.endpoint, **{key: value for key, value in args.items() if value})

    def rows_url(self):
        return self.url(self.rows_endpoint)


def table_mark(viewer, args, everyone=False, overdue_seconds=None):
    """The ETag mark of the table `args` asks for, from the viewer's account alone; None if it has none.

    A user's table moves with their `jobs_mark`, the admin's with `all_jobs_mark`
    (webapp/services/jobs/change_marks.py). The overdue backlog changes as time passes, not
    only when jobs are written: it has no mark, and its polls compare contents.
    """
    if everyone and overdue_seconds is not None and args.get("overdue") == "1":
        return None
    mark = viewer.all_jobs_mark if everyone else viewer.jobs_mark
    return polling.mark_of(
        "all" if everyone else "own", str(viewer.id), mark or 0, sorted(args.items(multi=True)), viewer_zone()
    )


def build(
    args, endpoint, rows_endpoint, viewer, owner_id=None, owner_query=None, overdue_seconds=None, counts_max_age=0
):
    """Read filters and page from `args` and load the rows; bad filters raise ValidationFailed.

    `viewer` is the signed-in account (its change marks make the ETag);
    `owner_query` (admins only) is an email or id typed into the owner filter, and makes
    the table everyone's jobs: its counts are everyone's, as webapp.services.monitoring.job_counts
    keeps them (at most `counts_max_age` seconds old);
    `owner_id` pins the table to one account (a user's own jobs);
    `overdue_seconds` (admins only) lets `overdue=1` show the overdue backlog.
    """
    everyone = owner_query is not None
    mark = table_mark(viewer, args, everyone, overdue_seconds)
    status = actions.check_status_filter(args.get("status"))
    page, per_page = parse_page(args, default_per_page=PER_PAGE)
    filters = {"status": status or ""}
    due_before = None
    if overdue_seconds is not None and args.get("overdue") == "1":
        filters = {"status": "", "overdue": "1"}
        due_before = utcnow() - timedelta(seconds=overdue_seconds)
    owner_unknown = False
    if everyone:
        filters["owner"] = owner_query.strip()
        found = users.owner_id_for(owner_query)
        owner_unknown = found is False
        owner_id = None if owner_unknown else found
    counted_at = None
    if owner_unknown:
        items, total, counts = [], 0, dict.fromkeys(JobStatus.ALL, 0)
    else:
        if everyone and owner_id is None:
            kept = job_counts.read(counts_max_age)
            counts, counted_at = kept.counts, kept.counted_at
        else:
            counts = actions.status_counts(owner_id)
        items, total = actions.list_jobs(
            owner_id=owner_id,
            status=None if due_before else status,
            page=page,
            per_page=per_page,
            due_before=due_before,
            with_total=due_before is not None,
        )
        if due_before is None:
            total = actions.total_from_counts(counts, status)
    owner_emails = users.emails_by_id([job.owner_id for job in items]) if everyone else {}
    table = JobTable(
        endpoint,
        rows_endpoint,
        items,
        total,
        page,
        per_page,
        counts,
        filters,
        owner_emails,
        owner_unknown,
        mark=mark,
        counted_at=counted_at,
    )
    table.etag = polling.compose(mark, fingerprint(table))
    return table


def fingerprint(table):
    """A hash of everything the rows, counts and pager show, and of the zone they are shown in."""
    rows = [
        (
            str(job.id),
            job.status,
            job.attempts,
            job.max_attempts,
            isoformat_z(job.updated_at),
            isoformat_z(job.send_at),
            isoformat_z(job.next_attempt_at),
            isoformat_z(job.sent_at),
            job.last_error,
        )
        for job in table.items
    ]
    owners = sorted((str(key), value) for key, value in table.owner_emails.items())
    return etag_of(
        rows,
        owners,
        table.total,
        table.page,
        table.per_page,
        sorted(table.counts.items()),
        sorted(table.filters.items()),
        viewer_zone(),
    )


def detail_mark(viewer, job_id, everyone=False):
    """The ETag mark of a job's detail view, from the viewer's account alone (see table_mark)."""
    mark = viewer.all_jobs_mark if everyone else viewer.jobs_mark
    return polling.mark_of("job", str(viewer.id), str(job_id), bool(everyone), mark or 0, viewer_zone())


def detail_fingerprint(job):
    """A hash of what a job's detail view shows that can change by itself."""
    return etag_of(
        str(job.id),
        job.status,
        job.attempts,
        isoformat_z(job.updated_at),
        isoformat_z(job.send_at),
        isoformat_z(job.sent_at),
        job.last_error,
        len(job.attempts_log),
        [(a.outcome, isoformat_z(a.finished_at), a.error) for a in job.attempts_log],
        viewer_zone(),
    )
