"""Admins: the audit log, newest first, filtered by actor and action, page by page."""

from math import ceil
from types import SimpleNamespace

from flask import request
from flask import url_for

from webapp.admin.blueprint import bp
from webapp.services import audit
from webapp.services.validation import parse_page
from webapp.web.htmx import render_page_or_fragment

PER_PAGE = 50


@bp.get("/audit")
def audit_page():
    """Who signed in (or failed to), signed up, changed a role, disabled, requeued... and from where."""
    actor = request.args.get("actor", "").strip()
    action = audit.check_action_filter(request.args.get("action"))
    page, per_page = parse_page(request.args, default_per_page=PER_PAGE)
    entries, total = audit.list(actor=actor, action=action, page=page, per_page=per_page)
    filters = {"actor": actor, "action": action or ""}

    def page_url(page):
        args = {**filters, "page": page if page > 1 else None, "per_page": per_page if per_page != PER_PAGE else None}
        return url_for("admin.audit_page", **{key: value for key, value in args.items() if value})

    pager = SimpleNamespace(
        number=page, per_page=per_page, total=total, pages=max(1, ceil(total / per_page)), url=page_url
    )
    return render_page_or_fragment(
        "admin/audit.html",
        "admin/_audit_results.html",
        entries=entries,
        pager=pager,
        filters=filters,
        actions=audit.ACTIONS,
    )
