"""`make bench` and `make bench-full`: every benchmark module, one JSON report, bench/results/latest.json.

    .venv/bin/python -m bench            # quick sizes, a few minutes
    .venv/bin/python -m bench --full     # the 100,000-job sizes (one to two hours on 2 vCPUs)
    .venv/bin/python -m bench --only reads,status

Each module runs in a process of its own (`python -m bench.<module>`, which prints its JSON;
a module reads its sizes from the environment variables below), so no module's servers or
settings leak into the next. The report keeps every module's JSON as it printed it, with how
long it took, plus the machine (CPU, cores, load average before and after: the figures are
only as quiet as the machine was), the git commit, and the mode. It is printed and written to
bench/results/latest.json (bench/README.md: the method and the latest figures).

Quick: reads, status and scheduling at 1,000 and 10,000 jobs, the pushdown at 1,000, 1,000 jobs through the
delivery benchmarks, 3 recovery runs; full: reads, status and scheduling at 1,000, 10,000 and 100,000 (the
headline ratio is the largest over the smallest), the pushdown at 1,000 and 100,000, throughput at
1,000 and 10,000, lateness 60 s steady with 100,000 jobs stored, 10 recovery runs, and the
revision before the delivery design (35d55bb) as a baseline where a module has one. A module
that fails is reported with its error and the others still run; the exit status is then 1.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "latest.json"

# module: (quick environment, full environment). Every module that measures something; the helpers
# (measure, stack, sink, smtp_ceiling, seed, webstack, in_app) are run by these.
MODULES = {
    # Reads at scale (issue 7 goal 1): pages, admin lists and counts, polls, the sweep, retention.
    "reads": (
        {"BENCH_READ_SIZES": "1000,10000", "BENCH_READ_RUNS": "40"},
        {"BENCH_READ_SIZES": "1000,10000,100000", "BENCH_READ_RUNS": "60", "BENCH_SWEEP_RUNS": "30"},
    ),
    "status": ({"BENCH_STATUS_SIZES": "1000,10000"}, {"BENCH_STATUS_SIZES": "1000,10000,100000"}),
    # The FerretDB pushdown patches: the app's queries with and without them.
    "ferretdb_pushdown": ({"BENCH_SIZES": "1000"}, {"BENCH_SIZES": "1000,100000"}),
    # Delivery (goals 2 to 5): round trips per job, throughput beside the SMTP ceiling, lateness, recovery.
    "delivery_cost": ({}, {"BENCH_BASELINE_REF": "35d55bb"}),
    "delivery_throughput": (
        {"BENCH_THROUGHPUT_SIZES": "1000"},
        {"BENCH_THROUGHPUT_SIZES": "1000,10000", "BENCH_BASELINE_REF": "35d55bb"},
    ),
    "delivery_lateness": ({}, {"BENCH_LATENESS_FULL": "1", "BENCH_STORED_JOBS": "100000"}),
    "delivery_recovery": ({"BENCH_RECOVERY_RUNS": "3"}, {"BENCH_RECOVERY_RUNS": "10", "BENCH_BASELINE_REF": "35d55bb"}),
    "faults": ({}, {}),
    # Scheduling (issue 8): what windows, expiry and recurring schedules add.
    "scheduling": ({"BENCH_SCHEDULING_SIZES": "1000,10000"}, {"BENCH_SCHEDULING_SIZES": "1000,10000,100000"}),
}


def machine():
    """What the figures were measured on."""
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    try:
        memory_gb = round(int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024, 1)
    except (OSError, IndexError, ValueError):
        memory_gb = None
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory_gb": memory_gb,
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def git_commit():
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    ).stdout.strip()
    return done.stdout.strip() + ("+changes" if dirty else "")


def run_module(name, env):
    """Run `python -m bench.<name>` with `env` added; its JSON (or the error), and how long it took."""
    started = time.monotonic()
    print(f"bench: {name} ...", file=sys.stderr, flush=True)
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{name}"], cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, text=True
    )
    seconds = round(time.monotonic() - started, 1)
    print(f"bench: {name} done in {seconds} s", file=sys.stderr, flush=True)
    if done.returncode:
        return {"error": f"exit status {done.returncode}", "seconds": seconds, "settings": env}
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError:
        return {"error": "no JSON on stdout", "output": done.stdout[-2000:], "seconds": seconds, "settings": env}
    return {"seconds": seconds, "settings": env, "result": result}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="the 100,000-job sizes")
    parser.add_argument("--only", help="comma-separated modules (default: all)")
    parser.add_argument("--output", default=str(RESULTS), help="where to write the report")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(MODULES)
    report = {
        "mode": "full" if args.full else "quick",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": machine(),
        "load_average_before": list(os.getloadavg()),
        "modules": {},
    }
    for name in names:
        report["modules"][name] = run_module(name, MODULES[name][1 if args.full else 0])
    report["load_average_after"] = list(os.getloadavg())
    report["minutes"] = round(sum(m["seconds"] for m in report["modules"].values()) / 60, 1)
    text = json.dumps(report, indent=2)
    print(text)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text + "\n")
    print(f"bench: written to {output}", file=sys.stderr)
    return 1 if any("error" in module for module in report["modules"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
