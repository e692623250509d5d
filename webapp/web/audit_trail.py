"""Audit from a view: the client address comes from the request (webapp.services.audit does the rest)."""

from flask import request

from webapp.services import audit


def audit_event(action, actor, target=None, outcome="success", detail=None):
    """Record `action` by `actor` from this request's client address (X-Forwarded-For per TRUSTED_PROXIES)."""
    return audit.record(action, actor=actor, target=target, outcome=outcome, ip=request.remote_addr, detail=detail)


def audited(action, actor, target=None, detail=None):
    """`audit.recorded` from this request's client address (see there: the block may set .target)."""
    return audit.recorded(action, actor, target, request.remote_addr, detail)
