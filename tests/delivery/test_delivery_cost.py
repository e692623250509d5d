"""What a job costs the database, counted: from POST /api/users/jobs to COMPLETED, four round trips
and the pending quota's count.

A real API call (Flask test client), a real Huey consumer (4 threads and its maintenance thread)
and real Redis, SMTP and FerretDB, in a process of its own (tests/support/delivery_cost.py), with
every MongoDB command seen by a pymongo CommandListener. The test fails if a round trip is added
to the happy path. Not a timing: bench/delivery_cost.py prints the same counts. (The scheduling
rate limit counts in Redis here; on the embedded stack without Redis it counts in MongoDB.)
"""

import json
import subprocess
import sys
from pathlib import Path

from webapp.services.jobs.change_marks import FLUSH_DELAY

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def measured(database, app, *extra):
    """Run tests/support/delivery_cost.py for three jobs in a process of its own; its JSON."""
    uri = database.uri if database is not None else app.config["MONGODB_URI"].rsplit("/", 1)[0] + "/"
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.delivery_cost", "--mongodb-uri", uri, "--jobs", "3", *extra],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_a_job_costs_four_database_round_trips_and_the_quota_count_from_the_api_call_to_completed(database, app):
    cost = measured(database, app)

    assert cost["messages"] == 3 and cost["duplicates"] == 0
    # The request: the token's user (its revocations are on the same document), the pending
    # quota's count (MAX_PENDING_JOBS_PER_USER, on by default: `aggregate`), then the insert.
    assert cost["api_commands_per_job"] == [["aggregate jobs", "find users", "insert jobs"]] * 3
    # The worker: the claim (no read before it), then COMPLETED at the 250 (no DATA-stage write
    # under IN_DOUBT_POLICY=resend, no lease check queued per job).
    assert cost["worker_commands_per_job"] == [["findAndModify jobs", "update jobs"]] * 3
    assert cost["database_round_trips_per_job"] == [5, 5, 5]
    assert cost["other_threads"] == []
    # The tables' change marks go out from the process's flusher, one bulk write of the users
    # collection per FLUSH_DELAY at most however many jobs changed meanwhile: a rate, not a cost per job.
    marks = {seen: n for seen, n in cost["per_time_commands_seen"].items() if seen.startswith("change-marks")}
    assert set(marks) <= {"change-marks: update users"}, marks
    assert cost["per_time_commands_per_second"].get("change-marks", 0) <= 1 / FLUSH_DELAY
    # The pause flag is read at most once a second per process, not once per job.
    assert cost["worker_pause_flag_reads_total"] <= 3


def test_a_job_with_a_zone_windows_and_an_expiry_costs_the_same_round_trips(database, app):
    """Scheduling (issue 8) adds no round trip: the effective send time is the claim's
    next_attempt_at, and the claimed document carries the zone, windows and expiry that the
    expiry check and a retry's plan read."""
    cost = measured(database, app, "--scheduled")

    assert cost["messages"] == 3 and cost["duplicates"] == 0
    assert cost["api_commands_per_job"] == [["aggregate jobs", "find users", "insert jobs"]] * 3
    assert cost["worker_commands_per_job"] == [["findAndModify jobs", "update jobs"]] * 3
    assert cost["database_round_trips_per_job"] == [5, 5, 5]
    assert cost["other_threads"] == []
