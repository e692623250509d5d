"""What people do, written once for every surface: the domain's rule, then the queue, then the audit.

The API, the pages and the CLI call these, so a job the API reschedules is queued exactly as
one the form reschedules, and an admin's requeue is audited whichever door it came through.
They sit above webapp.services and tasks (they need both); the surfaces sit above them. The
client address for the audit log is passed in (`ip`): a command line has none.
"""

from tasks.delivery import schedule_delivery
from tasks.maintenance import queue_due_now
from webapp.services import audit
from webapp.services.accounts import disabling
from webapp.services.delivery import pause
from webapp.services.jobs import actions as jobs
from webapp.services.jobs import bulk

# The target of a pause or resume in the audit log: delivery as a whole.
DELIVERY = ("delivery", None, "delivery")


def schedule_job(config, user, job_input, timing):
    """Store a new job for `user` and queue it for its send time (the pending quota applies)."""
    job = jobs.create_job(
        user.id,
        job_input,
        config["MAIL_DEFAULT_SENDER"],
        config["MAX_ATTEMPTS"],
        jobs.pending_quota(config, user),
        timing=timing,
    )
    schedule_delivery(job.id, job.next_attempt_at, config["SCHEDULE_LEAD_SECONDS"])
    return job


def reschedule_job(config, user, job_id, change):
    """Change a PENDING job of `user` and queue it for its new time.

    A task queued for the old time finds the job not due and does nothing; this one sends it.
    """
    job = jobs.reschedule_job(job_id, user.id, change, user)
    schedule_delivery(job.id, job.next_attempt_at, config["SCHEDULE_LEAD_SECONDS"])
    return job


def requeue_job(config, admin, job_id, ip=None):
    """An admin requeues a FAILED or IN_DOUBT job: audited, then queued to go now."""
    with audit.recorded("job_requeue", admin, ("job", job_id, None), ip):
        job = jobs.requeue_job(job_id, config["MAX_ATTEMPTS"])
    schedule_delivery(job.id, job.next_attempt_at, 0)
    return job


def close_in_doubt(admin, job_id, ip=None):
    """An admin says an IN_DOUBT job was delivered after all: COMPLETED without resending, audited."""
    with audit.recorded("job_close", admin, ("job", job_id, None), ip):
        return jobs.close_in_doubt(job_id)


def run_bulk(config, bulk_input, zone, now):
    """An admin's bulk action on PENDING jobs; the jobs it moved are queued for their new time."""
    result = bulk.run(bulk_input, zone, config["OVERDUE_SECONDS"], now)
    for job_id, due in result.queue:
        schedule_delivery(job_id, due, 0)
    return result


def enable_account(admin, user_id, ip=None):
    """An admin enables an account again: audited, and its held jobs that fell due are queued now."""
    with audit.recorded("account_enable", admin, ("user", user_id, None), ip) as event:
        user, due = disabling.enable_account(user_id)
        event.target = user
        event.detail = f"{len(due)} held jobs due, queued now" if due else None
    for job_id, due_at in due:
        schedule_delivery(job_id, due_at, 0)
    return user


def pause_delivery(admin, ip=None):
    """Stop handing email to the SMTP server (jobs stay PENDING, sends in flight finish), audited."""
    pause.pause(admin.email)
    audit.record("delivery_pause", actor=admin, target=DELIVERY, ip=ip)


def resume_delivery(admin, ip=None):
    """Deliver again and queue every due job at once (each still goes out once); how many, audited."""
    pause.resume(admin.email)
    queued = queue_due_now()
    audit.record("delivery_resume", actor=admin, target=DELIVERY, ip=ip, detail=f"{queued} due jobs queued")
    return queued
