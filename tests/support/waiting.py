"""Waiting for what a user would wait for: a condition, a job's status. One copy for every test."""

import time


def wait_until(predicate, timeout, what):
    """Poll `predicate` until it returns something truthy; return it, or fail saying `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def wait_for_status(job_id, statuses, timeout=20):
    """The stored job once its status is one of `statuses` (a string or a set); fail after `timeout`."""
    from webapp.models import Job

    wanted = {statuses} if isinstance(statuses, str) else set(statuses)

    def reached():
        job = Job.objects.get(id=job_id)
        return job if job.status in wanted else None

    return wait_until(reached, timeout, f"job {job_id} to become {' or '.join(sorted(wanted))}")


def iso(moment, timespec="auto"):
    """An aware datetime as the API writes it: ISO 8601 with `Z` for UTC."""
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")
