"""What users and admins do with jobs: create, list, read, reschedule, cancel, requeue."""

import math

from bson import ObjectId

from webapp.models import Job
from webapp.models import JobStatus
from webapp.models import Window
from webapp.services.accounts.users import parse_object_id
from webapp.services.errors import Conflict
from webapp.services.errors import NotFound
from webapp.services.errors import QuotaExceeded
from webapp.services.errors import ValidationFailed
from webapp.services.jobs import change_marks
from webapp.services.jobs import job_timing
from webapp.timeutil import as_utc
from webapp.timeutil import utcnow

# Which statuses allow which action; the pages show buttons from the same lists.
CANCELLABLE = (JobStatus.PENDING, JobStatus.IN_DOUBT)
REQUEUEABLE = (JobStatus.FAILED, JobStatus.IN_DOUBT)
# Still moving without anyone's help: tables showing these keep refreshing.
ACTIVE = (JobStatus.PENDING, JobStatus.RUNNING)


def message_id_for(job_id, sender):
    """A stable Message-ID per job, so a resend is recognisable as the same email."""
    domain = sender.rpartition("@")[2].strip(">").strip() or "localhost"
    return f"<job-{job_id}@{domain}>"


def pending_quota(config, user):
    """The most PENDING jobs `user` may have, or None for no quota (MAX_PENDING_JOBS_PER_USER, QUOTA_EXEMPT_ADMINS)."""
    if not config["MAX_PENDING_JOBS_PER_USER"] or (user.is_admin and config["QUOTA_EXEMPT_ADMINS"]):
        return None
    return config["MAX_PENDING_JOBS_PER_USER"]


def check_pending_quota(owner_id, max_pending):
    """Refuse (429 `quota_exceeded`) when the owner already has `max_pending` PENDING jobs.

    One count on the (owner_id, status) index, stopped at the quota. It is not a lock:
    creates by one account that run at the same instant may each see room, so the
    quota can be overshot by fewer than their number (4 requests at once: up to 3 jobs
    over); the next create is refused until enough have gone out.
    """
    if not max_pending:
        return
    pending = {"owner_id": owner_id, "status": JobStatus.PENDING}
    collection = Job._get_collection()
    if collection.count_documents(pending, limit=max_pending) < max_pending:
        return
    # Retry-After: room comes back when the earliest of them is due (at least a minute from now).
    first = collection.find_one(pending, {"next_attempt_at": 1}, sort=[("next_attempt_at", 1)])
    wait = (as_utc(first["next_attempt_at"]) - utcnow()).total_seconds() if first else 0
    raise QuotaExceeded(
        f"Quota reached: at most {max_pending} pending emails per account. "
        "Cancel some, or wait until some have been sent.",
        retry_after=max(60, math.ceil(wait)),
    )


def create_job(owner_id, job_input, sender, max_attempts, max_pending=None, timing=None, now=None):
    """Store a PENDING job from validated input; `send_at` omitted means now.

    `max_pending`: the owner's pending quota (see check_pending_quota); None means none.
    `timing` (webapp.services.jobs.job_timing.JobTiming, with the account's defaults) is read from
    the input alone (its zone or UTC, its windows or none) when not given.
    """
    check_pending_quota(owner_id, max_pending)
    now = now or utcnow()
    timing = timing or job_timing.resolve_new(job_input, None, now)
    job_id = ObjectId()
    job = new_job(job_id, owner_id, job_input.to, job_input.subject, job_input.body, timing, sender, max_attempts, now)
    job.save(force_insert=True)
    # Soon, not now: the API's create is on the delivery path's budget of round trips.
    change_marks.note(owner_id)
    return job


def new_job(job_id, owner_id, to, subject, body, timing, sender, max_attempts, now):
    """An unsaved PENDING Job; its first attempt is due at the effective send time."""
    return Job(
        id=job_id,
        owner_id=owner_id,
        to=list(to),
        subject=subject,
        body=body,
        send_at=timing.send_at,
        timezone=timing.timezone,
        windows=[Window(**window) for window in timing.windows],
        expires_at=timing.expires_at,
        next_attempt_at=timing.effective_send_at,
        max_attempts=max_attempts,
        attempts_left=max_attempts,
        message_id=message_id_for(job_id, sender),
        created_at=now,
        updated_at=now,
    )


def check_status_filter(status):
    """A status filter must name a real status (422 otherwise); empty means all."""
    if status in (None, ""):
        return None
    if status not in JobStatus.ALL:
        raise ValidationFailed("Unknown status.", {"status": f"must be one of {', '.join(JobStatus.ALL)}"})
    return status


def list_jobs(owner_id=None, status=None, page=1, per_page=20, due_before=None, with_total=True):
    """One page of jobs, newest first, and the total (None unless `with_total`); `owner_id` None means everyone's.

    Each shape is an equality on an index's first fields, then its sort: (owner_id, -created_at,
    -_id), (owner_id, status, ...), (-created_at, -_id), (status, -created_at, -_id). With
    `due_before`: the overdue backlog, PENDING jobs due before then (not held: those wait on
    purpose), the longest-waiting first, on (status, next_attempt_at, _id). Callers that show
    counts per status take the total from them (`total_from_counts`), which saves the count.
    """
    filters = {}
    if owner_id is not None:
        filters["owner_id"] = owner_id
    if status:
        filters["status"] = status
    order = ("-created_at", "-id")
    if due_before is not None:
        filters.update(status=JobStatus.PENDING, next_attempt_at__lt=due_before, held__exists=False)
        order = ("next_attempt_at", "id")
    query = Job.objects(**filters).order_by(*order)
    items = list(query.skip((page - 1) * per_page).limit(per_page))
    return items, query.count() if with_total else None


def total_from_counts(counts, status=None):
    """How many jobs a list of `status` (None: all) holds, from the counts per status shown beside it."""
    return counts.get(status, 0) if status else sum(counts.values())


def status_counts(owner_id=None):
    """How many jobs are in each status (every status present, zeros included).

    One `$group` by status, answered from an index that starts with the filter's fields and
    then `status`: (owner_id, status, ...) for one user, (status, ...) for everyone. Each
    status is one index seek and its entries are counted, so the cost is the number of jobs
    counted: a user's own, or all of them (which webapp.services.monitoring.job_counts keeps instead).
    """
    match = {"owner_id": owner_id} if owner_id is not None else {}
    pipeline = [{"$match": match}, {"$group": {"_id": "$status", "n": {"$sum": 1}}}]
    counts = dict.fromkeys(JobStatus.ALL, 0)
    for row in Job._get_collection().aggregate(pipeline):
        counts[row["_id"]] = row["n"]
    return counts


def count_by_owner(owner_ids):
    """How many jobs each of these users has (missing means none): one count per user.

    Each count is answered from the (owner_id, ...) index alone. One `$group` over
    `owner_id: {$in: [...]}` would be one round trip, but it reads every job of those users
    (on FerretDB: 1 s for a page of users holding 28,000 jobs); a page has at most 100 users.
    """
    collection = Job._get_collection()
    counts = {owner_id: collection.count_documents({"owner_id": owner_id}) for owner_id in set(owner_ids)}
    return {owner_id: n for owner_id, n in counts.items() if n}


def get_job(job_id, owner_id=None):
    """Load a job; another user's job is reported as missing, never as forbidden."""
    filters = {"id": parse_object_id(job_id, "job")}
    if owner_id is not None:
        filters["owner_id"] = owner_id
    job = Job.objects(**filters).first()
    if job is None:
        raise NotFound("No such job.")
    return job


def reschedule_job(job_id, owner_id, change, user, now=None):
    """Change a PENDING job (a validated JobPatch): content, send time, zone, windows, expiry.

    One update conditional on the job still being PENDING, so a job a worker has claimed
    meanwhile is a 409 and nothing changes. The job's `next_attempt_at` becomes the new
    effective send time; a delivery task queued for the old time finds the job not yet due
    (the claim requires next_attempt_at <= now) and a task for the new time sends it, once.
    """
    job = get_job(job_id, owner_id)
    if job.status != JobStatus.PENDING:
        raise Conflict(f"This job is {job.status} and can no longer be changed.")
    given = change.model_fields_set
    if not given:
        raise ValidationFailed("Nothing to change.", {"body": "give at least one field to change"})
    now = now or utcnow()
    timing = job_timing.resolve_change(change, job, user, now)
    updates = {f"set__{name}": getattr(change, name) for name in ("to", "subject", "body") if name in given}
    updates.update(
        set__send_at=timing.send_at,
        set__timezone=timing.timezone,
        set__next_attempt_at=timing.effective_send_at,
        set__windows=[Window(**window) for window in timing.windows],
        set__updated_at=now,
    )
    if timing.expires_at is None:
        updates["unset__expires_at"] = True
    else:
        updates["set__expires_at"] = timing.expires_at
    updated = Job.objects(id=job.id, status=JobStatus.PENDING).modify(new=True, **updates)
    if updated is None:
        job.reload()
        raise Conflict(f"This job is {job.status} and can no longer be changed.")
    change_marks.bump([updated.owner_id])
    return updated


def cancel_job(job_id, owner_id=None):
    """PENDING → CANCELLED atomically; a job already running or done is a 409."""
    job = get_job(job_id, owner_id)
    now = utcnow()
    updated = Job.objects(id=job.id, status__in=list(CANCELLABLE)).modify(
        new=True, set__status=JobStatus.CANCELLED, set__updated_at=now
    )
    if updated is None:
        job.reload()
        raise Conflict(f"This job is {job.status} and can no longer be cancelled.")
    change_marks.bump([updated.owner_id])
    return updated


def requeue_job(job_id, max_attempts):
    """Admin: send a FAILED or IN_DOUBT job again now, with a fresh set of attempts."""
    job = get_job(job_id)
    now = utcnow()
    updated = Job.objects(id=job.id, status__in=list(REQUEUEABLE)).modify(
        new=True,
        set__status=JobStatus.PENDING,
        set__next_attempt_at=now,
        set__max_attempts=job.attempts + max_attempts,
        set__attempts_left=max_attempts,
        set__updated_at=now,
        unset__delivery_stage=True,
    )
    if updated is None:
        raise Conflict(f"Only FAILED or IN_DOUBT jobs can be requeued; this one is {job.status}.")
    change_marks.bump([updated.owner_id])
    return updated


def close_in_doubt(job_id):
    """Admin: an IN_DOUBT job was in fact delivered; mark it COMPLETED without resending."""
    job = get_job(job_id)
    now = utcnow()
    updated = Job.objects(id=job.id, status=JobStatus.IN_DOUBT).modify(
        new=True, set__status=JobStatus.COMPLETED, set__updated_at=now, unset__delivery_stage=True
    )
    if updated is None:
        raise Conflict(f"Only IN_DOUBT jobs can be closed; this one is {job.status}.")
    change_marks.bump([updated.owner_id])
    return updated
