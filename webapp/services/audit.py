"""The audit log: `record` an event, `list` them newest first. Callers never write entries directly.

Who calls: the sign-in, sign-up and sign-out views of the pages and the API, the admin
actions (role, disable/enable, requeue, close) and delivery pause/resume. `record` takes
no request and no form, only what an entry holds, so a password cannot end up here by
passing the wrong thing along; `detail` is one short sentence.
"""

from contextlib import contextmanager
from datetime import timedelta
from types import SimpleNamespace

from bson import ObjectId
from bson.errors import InvalidId

from webapp.models import AuditEntry
from webapp.models import Job
from webapp.models import User
from webapp.services.errors import AppError
from webapp.services.errors import ValidationFailed
from webapp.timeutil import utcnow

# Every action the log knows, with the words the admin page shows for it.
ACTIONS = {
    "sign_in": "Sign-in",
    "sign_up": "Sign-up",
    "sign_out": "Sign-out (browser)",
    "token_revoke": "Token revoked (API logout)",
    "role_change": "Role change",
    "account_disable": "Account disabled",
    "account_enable": "Account enabled",
    "job_requeue": "Job requeued",
    "job_close": "Job closed as delivered",
    "delivery_pause": "Delivery paused",
    "delivery_resume": "Delivery resumed",
}
OUTCOMES = ("success", "failure")
MAX_DETAIL_CHARS = 500


def _target_fields(target):
    """(type, id, label) of what the action was done to: a User, a Job, or such a tuple."""
    if target is None:
        return None, None, None
    if isinstance(target, User):
        return "user", str(target.id), target.email
    if isinstance(target, Job):
        return "job", str(target.id), None
    kind, target_id, label = target
    return kind, str(target_id) if target_id is not None else None, label


def _clip(text, limit):
    """`text` cut to the field's size (a path id can be anything), or None for empty."""
    return text[:limit] if text else None


def record(action, actor=None, target=None, outcome="success", ip=None, detail=None):
    """Store one event and return it.

    `actor`: the User who acted, or the email typed (a sign-in for an unknown account),
    or None. `target`: a User, a Job, or a (type, id, label) tuple. `ip`: the client
    address (request.remote_addr, which honours TRUSTED_PROXIES). `detail`: a short
    sentence (why it failed, what changed); never put request data or secrets in it.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    if outcome not in OUTCOMES:
        raise ValueError(f"audit outcome must be one of {OUTCOMES}, not {outcome!r}")
    if detail is not None and not isinstance(detail, str):
        raise TypeError("audit detail is one sentence (a str), not request data")
    actor_id, actor_email = None, None
    if isinstance(actor, User):
        actor_id, actor_email = actor.id, actor.email
    elif isinstance(actor, str):
        actor_email = actor.strip().lower()[:320]
    target_type, target_id, target_label = _target_fields(target)
    entry = AuditEntry(
        at=utcnow(),
        action=action,
        outcome=outcome,
        actor_id=actor_id,
        actor_email=actor_email,
        target_type=target_type,
        target_id=_clip(target_id, 64),
        target_label=_clip(target_label, 320),
        ip=_clip(ip, 64),
        detail=_clip(detail, MAX_DETAIL_CHARS),
    )
    entry.save(force_insert=True)
    return entry


def check_action_filter(action):
    """An action filter must name a known action (422 otherwise); empty means all."""
    if action in (None, ""):
        return None
    if action not in ACTIONS:
        raise ValidationFailed("Unknown action.", {"action": f"must be one of {', '.join(ACTIONS)}"})
    return action


def _actor_filter(actor):
    """Filters for an actor given as an email or a user id; None when it can match nothing."""
    actor = (actor or "").strip()
    if not actor:
        return {}
    if "@" in actor:
        return {"actor_email": actor.lower()}
    try:
        return {"actor_id": ObjectId(actor)}
    except (InvalidId, TypeError):
        return None


def list(actor=None, action=None, page=1, per_page=20):  # noqa: A001 - the name callers know (audit.list)
    """One page of entries, newest first, and the total; `actor` is an email or a user id."""
    action = check_action_filter(action)  # a bad filter is a 422 whatever the actor matches
    filters = _actor_filter(actor)
    if filters is None:
        return [], 0
    if action:
        filters["action"] = action
    query = AuditEntry.objects(**filters).order_by("-at", "-id")
    return [*query.skip((page - 1) * per_page).limit(per_page)], query.count()


def purge_older_than(days, now=None):
    """Delete entries older than `days` days (0 keeps everything); returns how many (the sweep calls it)."""
    if not days:
        return 0
    return AuditEntry.objects(at__lt=(now or utcnow()) - timedelta(days=days)).delete()


@contextmanager
def recorded(action, actor, target=None, ip=None, detail=None):
    """Record `action` when the block ends: a success, or a failure with the refusal's message.

    The block may set `.target` (say, the user it loaded), `.actor` and `.detail` on what it
    gets; a refusal (an AppError: 404, 409, ...) is recorded and raised again.

        with audit.recorded("role_change", admin, ("user", user_id, None), ip) as event:
            event.target = users.set_role(user_id, role)
    """
    event = SimpleNamespace(actor=actor, target=target, detail=detail)
    try:
        yield event
    except AppError as exc:
        record(action, event.actor, event.target, "failure", ip, exc.message)
        raise
    record(action, event.actor, event.target, "success", ip, event.detail)
