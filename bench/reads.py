"""Reads at scale, through the HTTP API of a real stack: list pages, admin lists and counts, the HTMX poll,
and the periodic sweep, at 1,000 to 100,000 stored jobs. Prints JSON.

Per size: a fresh FerretDB is seeded with realistic accounts and jobs (bench/seed.py, insert_many),
its indexes built by the app's own models, then the stack `make run` runs is started on it
(bench/webstack.py: gunicorn with gunicorn.conf.py, one Huey consumer on SQLite, an SMTP server)
and every request below is sent RUNS times over one kept-alive connection, after WARM_UP runs, in turns
(a round sends each once):

- `list_small` / `list_big`: `GET /api/users/jobs?page=1&per_page=20` for a user with 10 jobs and
  one with 10% of all jobs (10,000 at 100,000); `list_big_failed` (status=FAILED), `list_big_page5`;
- `admin_list`: `GET /api/admin/jobs?page=1&per_page=20` (the page and the counts per status),
  `admin_list_failed`, `admin_owner_big` (owner=the big user's email), `admin_stats`
  (`GET /api/admin/stats`), `admin_users` (`GET /api/admin/users`), `admin_audit`;
- `page_jobs_big`, `page_admin_jobs`, `page_admin_users`: whole HTML pages, signed in with a session;
- `poll_small`, `poll_big`, `poll_admin`: the tables' HTMX poll with the ETag the page was rendered
  with (`If-None-Match`): an unchanged table must answer 304.

Then, with the consumer stopped so nothing else talks to the database, each request again
COUNT_RUNS times while FerretDB's own counters count the commands it served: `round_trips` per
request. Then the periodic sweep in the app's process (bench/in_app.py: the same staged work at
every size), and one retention batch.

Baseline in the same run: the same requests against a checkout of BASELINE_REF (default: main
before issue 7's read changes, with FerretDB's pushdown) on a copy of the same data, its own
indexes built by its own models. `ratio_largest_over_smallest` (p95) is the headline: goal under 1.5.

    .venv/bin/python -m bench.reads                          # BENCH_READ_SIZES, default 1000,10000
    BENCH_READ_SIZES=1000,10000,100000 .venv/bin/python -m bench.reads
    BENCH_READ_BASELINE_REF= ...                             # no baseline
"""

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import seed as seeding  # noqa: E402
from bench.in_app import percentiles  # noqa: E402
from bench.webstack import DATABASE  # noqa: E402
from bench.webstack import CountedFerretDB  # noqa: E402
from bench.webstack import WebStack  # noqa: E402
from bench.webstack import checkout  # noqa: E402
from bench.webstack import command_delta  # noqa: E402

SIZES = [int(size) for size in os.environ.get("BENCH_READ_SIZES", "1000,10000").split(",")]
RUNS = int(os.environ.get("BENCH_READ_RUNS", "40"))
WARM_UP = 5
COUNT_RUNS = 10
SWEEP_RUNS = int(os.environ.get("BENCH_SWEEP_RUNS", "10"))
BASELINE_REF = os.environ.get("BENCH_READ_BASELINE_REF", "4128159")
# The goals, in ms (p95) and round trips.
GOALS = {
    "list_small": 150,
    "list_big": 150,
    "admin_list": 300,
    "admin_stats": 300,
    "poll_small": 20,
    "poll_big": 20,
    "poll_admin": 20,
}
POLL_ROUND_TRIPS_GOAL = 1
RATIO_GOAL = 1.5


def requests_for(stack, owners):
    """{name: (session, path, headers)} for every request measured (sessions are signed in once)."""
    password = seeding.ACCOUNT_PASSWORD
    small, big, admin = (owners.emails[owners.small], owners.emails[owners.big], owners.emails[owners.admin])
    api = {who: stack.api_session(email, password) for who, email in (("small", small), ("big", big), ("admin", admin))}
    pages = {
        who: stack.page_session(email, password) for who, email in (("small", small), ("big", big), ("admin", admin))
    }
    jobs, admin_jobs = "/api/users/jobs?page=1&per_page=20", "/api/admin/jobs?page=1&per_page=20"
    plan = {
        "list_small": (api["small"], jobs, {}),
        "list_big": (api["big"], jobs, {}),
        "list_big_failed": (api["big"], jobs + "&status=FAILED", {}),
        "list_big_page5": (api["big"], jobs.replace("page=1", "page=5"), {}),
        "admin_list": (api["admin"], admin_jobs, {}),
        "admin_list_failed": (api["admin"], admin_jobs + "&status=FAILED", {}),
        "admin_owner_big": (api["admin"], admin_jobs + f"&owner={big}", {}),
        "admin_stats": (api["admin"], "/api/admin/stats", {}),
        "admin_users": (api["admin"], "/api/admin/users?page=1&per_page=20", {}),
        "admin_audit": (api["admin"], "/api/admin/audit?page=1&per_page=20", {}),
        "page_jobs_big": (pages["big"], "/jobs", {}),
        "page_admin_jobs": (pages["admin"], "/admin/jobs", {}),
        "page_admin_users": (pages["admin"], "/admin/users", {}),
    }
    for who, page, rows in (
        ("small", "/jobs", "/jobs/rows"),
        ("big", "/jobs", "/jobs/rows"),
        ("admin", "/admin/jobs", "/admin/jobs/rows"),
    ):
        plan[f"poll_{who}"] = (
            pages[who],
            rows,
            {"HX-Request": "true", "If-None-Match": _etag(stack, pages[who], page)},
        )
    return plan


def _etag(stack, session, page):
    """The ETag a page's table was rendered with (its `data-etag`), as the page's script sends it back."""
    import re

    response = session.get(stack.url + page, timeout=60)
    found = re.search(r"data-etag='(\"[^\"]+\")'", response.text)
    if found is None:
        raise RuntimeError(
            f"{page}: no data-etag in the page ({response.status_code} {response.url}): {response.text[:1500]}"
        )
    return found.group(1)


def _send(stack, session, path, headers):
    """One request; a poll keeps the ETag it gets back (200 or 304), as the page's script does."""
    answer = session.get(stack.url + path, headers=headers, timeout=120)
    if "If-None-Match" in headers and answer.headers.get("ETag"):
        headers["If-None-Match"] = answer.headers["ETag"]
    return answer


def time_requests(stack, plan, runs, warm_up=WARM_UP):
    """{name: percentiles and statuses} over `runs` requests each, taken in turns.

    Every request is warmed up first; then each round sends every request once, so what else
    the machine and the stack do meanwhile (the consumer's beats and recounts, the other
    engineers' suites) falls on all of them alike, not on whichever was measured at that moment.
    """
    samples = {name: [] for name in plan}
    statuses = {name: {} for name in plan}
    for round_number in range(warm_up + runs):
        for name, (session, path, headers) in plan.items():
            start = time.perf_counter()
            answer = _send(stack, session, path, headers)
            elapsed = (time.perf_counter() - start) * 1000
            if answer.status_code >= 400:
                raise RuntimeError(f"{name}: {path} answered {answer.status_code}: {answer.text[:300]}")
            if round_number >= warm_up:
                samples[name].append(elapsed)
                statuses[name][answer.status_code] = statuses[name].get(answer.status_code, 0) + 1
    return {name: {**percentiles(samples[name]), "statuses": statuses[name]} for name in plan}


def count_round_trips(stack, database, plan):
    """{name: database commands per request} with nothing else running (the consumer is stopped)."""
    counts = {}
    for name, (session, path, headers) in plan.items():
        _send(stack, session, path, headers)  # this connection's worker is warm, the poll's ETag fresh
        before = database.commands()
        for _ in range(COUNT_RUNS):
            _send(stack, session, path, headers)
        served = command_delta(before, database.commands())
        counts[name] = {
            "round_trips": round(sum(served.values()) / COUNT_RUNS, 2),
            "commands": {command: round(n / COUNT_RUNS, 2) for command, n in sorted(served.items())},
        }
    return counts


def in_app(code, uri, tmp, *args):
    """Run bench/in_app.py in `code` (its app, its models) against `uri`; its JSON."""
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env.update(
        MONGODB_URI=uri,
        APP_ENV="development",
        LOG_LEVEL="WARNING",
        HUEY_SQLITE_PATH=str(Path(tmp) / "in-app-huey.db"),
        HUEY_NAME="bench-in-app",
    )
    done = subprocess.run(
        [sys.executable, "-m", "bench.in_app", *args], cwd=code, env=env, capture_output=True, text=True, timeout=3600
    )
    if done.returncode:
        raise RuntimeError(f"bench.in_app {' '.join(args)} failed in {code}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(data_dir, tmp, code, owners):
    """Start FerretDB and the stack from `code` on `data_dir`; every figure for that code."""
    database = CountedFerretDB(str(data_dir))
    database.start()
    try:
        uri = database.uri + DATABASE
        indexes = in_app(code, uri, tmp, "indexes")
        time.sleep(3)  # FerretDB learns which kinds of values each field holds in the background (~2 s at 100k)
        stack = WebStack(database, tmp, code=code).start()
        try:
            plan = requests_for(stack, owners)
            timings = time_requests(stack, plan, RUNS)
            stack.stop_consumer()
            trips = count_round_trips(stack, database, plan)
            sweep = in_app(code, uri, tmp, "sweep", str(SWEEP_RUNS))
            counts = in_app(code, uri, tmp, "counts", str(RUNS))
        finally:
            stack.stop()
    finally:
        database.stop()
    for name, figures in timings.items():
        figures.update(trips[name])
    return {"requests": timings, "indexes_s": indexes["indexes_s"], "counts_all_jobs": counts, **sweep}


def run_size(size, tmp, baseline_code):
    """Seed `size` jobs once; measure this checkout, then the baseline on a copy of the same data."""
    from pymongo import MongoClient

    from webapp.services.accounts.passwords import hash_password
    from webapp.timeutil import utcnow

    data = tmp / f"data-{size}"
    database = CountedFerretDB(str(data))
    database.start()
    try:
        start = time.perf_counter()
        client = MongoClient(database.uri)
        # The same documents serve both codes, so only fields both models know (mongoengine refuses
        # a document with a field its model lacks): the baseline predates `attempts_left`.
        both_know = (
            baseline_code is None
            or "attempts_left" in (Path(baseline_code) / "webapp" / "models" / "job.py").read_text()
        )
        owners = seeding.seed(
            client[DATABASE], size, utcnow(), hash_password(seeding.ACCOUNT_PASSWORD), with_attempts_left=both_know
        )
        client.close()
        seed_s = time.perf_counter() - start
    finally:
        database.stop()
    result = {
        "jobs": size,
        "seed_s": round(seed_s, 1),
        "owners": {"small": owners.jobs.get(owners.small, 0), "big": owners.jobs.get(owners.big, 0)},
    }
    baseline_data = None
    if baseline_code:
        baseline_data = tmp / f"baseline-data-{size}"
        shutil.copytree(data, baseline_data)
    result["current"] = measure(data, tmp, ROOT, owners)
    if baseline_code:
        result["baseline"] = measure(baseline_data, tmp, baseline_code, owners)
        shutil.rmtree(baseline_data, ignore_errors=True)
    shutil.rmtree(data, ignore_errors=True)
    return result


def summary(results):
    """The headline: p95 and round trips per request at each size, ratios largest/smallest, goals."""
    small, large = results[0], results[-1]
    out = {"sizes": [r["jobs"] for r in results], "by_request": {}}
    for name, last in large["current"]["requests"].items():
        first = small["current"]["requests"][name]
        row = {f"p95_ms_{r['jobs']}": r["current"]["requests"][name]["p95_ms"] for r in results}
        row["ratio_p95"] = round(last["p95_ms"] / first["p95_ms"], 2)
        # The median moves less than the tail on a shared machine: both ratios are reported.
        row["ratio_p50"] = round(last["p50_ms"] / first["p50_ms"], 2)
        row["round_trips"] = last["round_trips"]
        if "baseline" in large:
            base = large["baseline"]["requests"][name]
            row[f"baseline_p95_ms_{large['jobs']}"] = base["p95_ms"]
            row["baseline_ratio_p95"] = round(base["p95_ms"] / small["baseline"]["requests"][name]["p95_ms"], 2)
            row["speedup_vs_baseline"] = round(base["p95_ms"] / last["p95_ms"], 2)
            row["baseline_round_trips"] = base["round_trips"]
        if name in GOALS:
            row["goal_p95_ms"] = GOALS[name]
            row["meets_goal"] = (
                last["p95_ms"] < GOALS[name]
                and row["ratio_p95"] < RATIO_GOAL
                and (
                    not name.startswith("poll")
                    or (last["round_trips"] <= POLL_ROUND_TRIPS_GOAL and set(last["statuses"]) == {304})
                )
            )
        out["by_request"][name] = row
    sweep = {f"p95_ms_{r['jobs']}": r["current"]["sweep"]["p95_ms"] for r in results}
    sweep.update({f"p50_ms_{r['jobs']}": r["current"]["sweep"]["p50_ms"] for r in results})
    sweep["ratio_p95"] = round(large["current"]["sweep"]["p95_ms"] / small["current"]["sweep"]["p95_ms"], 2)
    sweep["ratio_p50"] = round(large["current"]["sweep"]["p50_ms"] / small["current"]["sweep"]["p50_ms"], 2)
    if "baseline" in large:
        sweep.update({f"baseline_p95_ms_{r['jobs']}": r["baseline"]["sweep"]["p95_ms"] for r in results})
        sweep["baseline_ratio_p95"] = round(
            large["baseline"]["sweep"]["p95_ms"] / small["baseline"]["sweep"]["p95_ms"], 2
        )
    out["sweep"] = sweep
    out["counts_all_jobs"] = {
        f"{way}_p95_ms_{r['jobs']}": r["current"]["counts_all_jobs"][way]["p95_ms"]
        for way in ("live", "kept_read")
        for r in results
    }
    if large["current"].get("retention"):
        out["retention_batch"] = {f"p95_ms_{r['jobs']}": r["current"]["retention"]["batch"]["p95_ms"] for r in results}
    return out


def machine():
    """What the figures were measured on."""
    load = os.getloadavg()
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = platform.processor()
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in load],
    }


def run(sizes=None):
    """Every size; the report as a dict."""
    sizes = sizes or SIZES
    tmp = Path(tempfile.mkdtemp(prefix="mailjobs-bench-reads-"))
    started = time.time()
    try:
        baseline_code = checkout(BASELINE_REF, tmp) if BASELINE_REF else None
        if baseline_code:
            shutil.copy(ROOT / "bench" / "in_app.py", baseline_code / "bench" / "in_app.py")
        results = [run_size(size, tmp, baseline_code) for size in sizes]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report = {
        "bench": "reads",
        "machine": machine(),
        "runs": RUNS,
        "warm_up": WARM_UP,
        "baseline": f"git {BASELINE_REF}" if BASELINE_REF else None,
        "minutes": round((time.time() - started) / 60, 1),
        "summary": summary(results),
        "by_size": results,
    }
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return report


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
