"""Disable and enable an account: no way in, and nothing sent for it, until an admin enables it again.

Disabled means: sign-in refused with the same answer as a wrong password; bearer tokens
and browser sessions refused on their next request (the user loaders read the account on
every request anyway, so this costs no query); its jobs held, not cancelled. Disabling
also moves the account's session and token generations on, so enabling it again does
not revive a token or a session cookie from before: its owner signs in again.

Holding is one update of the owner's unfinished jobs (`held: owner_disabled`), and the
claim refuses a held job (one more condition in its filter, webapp/services/delivery/attempts.py),
so a held job stays PENDING and is never handed to the SMTP server. A send already under
way finishes; if it fails it comes back PENDING and held. Enabling unsets the hold, and
the jobs that fell due meanwhile are returned for the caller to queue: they go out late.

A job created by a request that was already past its authentication when the account was
disabled is not held (a window of one request); the next create is refused.
"""

from webapp.models import Job
from webapp.models import JobStatus
from webapp.models import User
from webapp.services.accounts.users import count_admins
from webapp.services.accounts.users import parse_object_id
from webapp.services.errors import Conflict
from webapp.services.errors import NotFound
from webapp.timeutil import utcnow

HELD_OWNER_DISABLED = "owner_disabled"
LAST_ADMIN = "The last admin cannot be disabled; promote someone else first."


def _load(user_id):
    user = User.objects(id=parse_object_id(user_id, "user")).first()
    if user is None:
        raise NotFound("No such user.")
    return user


def disable_account(user_id, by=None):
    """Disable the account and hold its jobs; returns the user. 409 for yourself or the last admin.

    Disabling a disabled account holds its jobs again (finishing a disable that was cut
    short) and changes nothing else. Two admins disabling each other at once cannot leave
    no admin: the count is checked again after the write and the write undone.
    """
    user = _load(user_id)
    if by is not None and by.id == user.id:
        raise Conflict("You cannot disable your own account; ask another admin.")
    last_admin_check = user.is_admin and not user.disabled
    if last_admin_check and count_admins() <= 1:
        raise Conflict(LAST_ADMIN)
    User.objects(id=user.id).update_one(set__disabled=True, inc__session_generation=1, inc__token_generation=1)
    if last_admin_check and count_admins() == 0:
        User.objects(id=user.id).update_one(set__disabled=False)
        raise Conflict(LAST_ADMIN)
    hold_jobs_of(user.id)
    user.reload()
    return user


def enable_account(user_id):
    """Enable the account and release its jobs; returns (user, [(job_id, due_at)] of held jobs now due)."""
    user = _load(user_id)
    User.objects(id=user.id).update_one(set__disabled=False)
    due = release_jobs_of(user.id)
    user.reload()
    return user, due


def hold_jobs_of(owner_id):
    """Mark the owner's unfinished jobs held (one update on the owner_id index); returns how many."""
    return (
        Job._get_collection()
        .update_many(
            {"owner_id": owner_id, "status": {"$nin": list(JobStatus.FINAL)}}, {"$set": {"held": HELD_OWNER_DISABLED}}
        )
        .modified_count
    )


def release_jobs_of(owner_id, now=None):
    """Unset the owner's holds; return their PENDING jobs already due, [(job_id, due_at)], to queue now.

    A job not due yet keeps its queue entry and goes at its time. A due one had its
    task run and skip it while it was held, so it needs queueing again.
    """
    collection = Job._get_collection()
    collection.update_many({"owner_id": owner_id, "held": HELD_OWNER_DISABLED}, {"$unset": {"held": ""}})
    due = collection.find(
        {"owner_id": owner_id, "status": JobStatus.PENDING, "next_attempt_at": {"$lte": now or utcnow()}},
        {"next_attempt_at": 1},
    )
    return [(job["_id"], job["next_attempt_at"]) for job in due]
