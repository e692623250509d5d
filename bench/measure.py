"""Helpers the benchmarks share: times, percentiles, duplicates, CPU, an earlier revision, size ratios."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed_runs(action, runs, warm_up=True, scale=1000):
    """`action()` timed `runs` times, after one warm-up run that is not counted (if asked): a list of
    milliseconds (scale 1000) or microseconds (1e6)."""
    if warm_up:
        action()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * scale)
    return samples


def ratios_largest_to_smallest(results):
    """Each `*_ms` figure of the largest size divided by the smallest's (results ordered by size)."""
    first, last = results[0], results[-1]
    return {key: round(last[key] / first[key], 2) for key in last if key.endswith("_ms") and first[key]}


def cpu_seconds(pid):
    """User + system CPU seconds the process `pid` has used so far (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def checkout(ref, into):
    """The project as it was at git `ref`, extracted under `into` (sharing this .venv and FerretDB); its path.

    For a baseline measured in the same run: consumers started there run the earlier code.
    """
    target = Path(into) / f"baseline-{ref}"
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    (target / ".venv").symlink_to((ROOT / ".venv").resolve())
    (target / "var" / "bin").mkdir(parents=True, exist_ok=True)
    (target / "var" / "bin" / "ferretdb").symlink_to((ROOT / "var" / "bin" / "ferretdb").resolve())
    return target


def percentiles(values):
    """p50/p95/p99/max (seconds) of `values`, nearest rank."""
    if not values:
        return {}
    ordered = sorted(values)

    def rank(p):
        return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))]

    return {
        "p50_s": round(rank(50), 3),
        "p95_s": round(rank(95), 3),
        "p99_s": round(rank(99), 3),
        "max_s": round(ordered[-1], 3),
        "min_s": round(ordered[0], 3),
        "n": len(ordered),
    }


def due_in(seconds):
    """A send time `seconds` from now (UTC, millisecond precision)."""
    from webapp.timeutil import utcnow

    moment = utcnow() + timedelta(seconds=seconds)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def duplicates(arrivals):
    """How many arrivals were extra copies of a Message-ID already seen."""
    seen = {}
    for _, message_id, _ in arrivals:
        seen[message_id] = seen.get(message_id, 0) + 1
    return sum(count - 1 for count in seen.values())


def stop_cleanly_on_sigterm():
    """Turn SIGTERM into SystemExit, so a benchmark stopped from outside still stops what it started."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
