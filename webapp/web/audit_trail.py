"""Audit from a view: the client address comes from the request (webapp.services.audit does the rest)."""

from contextlib import contextmanager
from types import SimpleNamespace

from flask import request

from webapp.services import audit
from webapp.services.errors import AppError

# The target of a pause or resume: delivery as a whole.
DELIVERY = ("delivery", None, "delivery")


def audit_event(action, actor, target=None, outcome="success", detail=None):
    """Record `action` by `actor` from this request's client address (X-Forwarded-For per TRUSTED_PROXIES)."""
    return audit.record(action, actor=actor, target=target, outcome=outcome, ip=request.remote_addr, detail=detail)


@contextmanager
def audited(action, actor, target=None, detail=None):
    """Record `action` when the block ends: a success, or a failure with the refusal's message.

    The block may set `.target` (say, the user it loaded), `.actor` and `.detail` on what
    it gets; a refusal (an AppError: 404, 409, ...) is recorded and raised again.

        with audited("role_change", current_user, ("user", user_id, None)) as event:
            event.target = accounts.set_role(user_id, role)
    """
    event = SimpleNamespace(actor=actor, target=target, detail=detail)
    try:
        yield event
    except AppError as exc:
        audit_event(action, event.actor, event.target, "failure", exc.message)
        raise
    audit_event(action, event.actor, event.target, "success", event.detail)
