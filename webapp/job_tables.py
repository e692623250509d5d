"""The live job tables behind "My jobs" and the admin panel: one page of rows, counts, an ETag.

The page and its polling fragment are built from the same `JobTable`, so the
ETag a page is rendered with is the one its first poll is checked against.
"""

from dataclasses import dataclass
from dataclasses import field
from datetime import timedelta
from math import ceil

from flask import url_for

from webapp.htmx import etag_of
from webapp.models import JobStatus
from webapp.services import accounts
from webapp.services import jobs
from webapp.services.validation import parse_page
from webapp.templating import viewer_zone
from webapp.timeutil import isoformat_z
from webapp.timeutil import utcnow

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
    etag: str = ""

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
        return any(self.counts.get(status) for status in jobs.ACTIVE)

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


def build(args, endpoint, rows_endpoint, owner_id=None, owner_query=None, overdue_seconds=None):
    """Read filters and page from `args` and load the rows; bad filters raise ValidationFailed.

    `owner_query` (admins only) is an email or id typed into the owner filter;
    `owner_id` pins the table to one account (a user's own jobs);
    `overdue_seconds` (admins only) lets `overdue=1` show the overdue backlog.
    """
    status = jobs.check_status_filter(args.get("status"))
    page, per_page = parse_page(args, default_per_page=PER_PAGE)
    filters = {"status": status or ""}
    due_before = None
    if overdue_seconds is not None and args.get("overdue") == "1":
        filters = {"status": "", "overdue": "1"}
        due_before = utcnow() - timedelta(seconds=overdue_seconds)
    owner_unknown = False
    if owner_query is not None:
        filters["owner"] = owner_query.strip()
        found = accounts.owner_id_for(owner_query)
        owner_unknown = found is False
        owner_id = None if owner_unknown else found
    if owner_unknown:
        items, total, counts = [], 0, dict.fromkeys(JobStatus.ALL, 0)
    else:
        items, total = jobs.list_jobs(owner_id=owner_id, status=None if due_before else status, page=page,
                                      per_page=per_page, due_before=due_before)
        counts = jobs.status_counts(owner_id)
    owner_emails = accounts.emails_by_id([job.owner_id for job in items]) if owner_query is not None else {}
    table = JobTable(endpoint, rows_endpoint, items, total, page, per_page, counts, filters, owner_emails,
                     owner_unknown)
    table.etag = fingerprint(table)
    return table


def fingerprint(table):
    """The ETag: everything the rows, counts and pager show, and the zone they are shown in."""
    rows = [(str(job.id), job.status, job.attempts, job.max_attempts, isoformat_z(job.updated_at),
             isoformat_z(job.sent_at), job.last_error) for job in table.items]
    owners = sorted((str(key), value) for key, value in table.owner_emails.items())
    return etag_of(rows, owners, table.total, table.page, table.per_page, sorted(table.counts.items()),
                   sorted(table.filters.items()), viewer_zone())


def detail_etag(job):
    """What a job's detail view shows that can change by itself."""
    return etag_of(str(job.id), job.status, job.attempts, isoformat_z(job.updated_at), job.last_error,
                   len(job.attempts_log), viewer_zone())
