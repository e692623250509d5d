"""What `make run` and `make test` need from the machine, checked in their first second.

    python3 scripts/preflight.py run  [--python PATH]   # Python 3.13, and Go until FerretDB is built
    python3 scripts/preflight.py test [--python PATH]   # the same, plus redis-server and Chromium

Prints the exact commands that install what is missing (Debian, Ubuntu, macOS) and exits 1,
rather than letting a build stop after minutes or the suite fail test by test. Standard
library only: it runs before the venv exists. The finders are shared with the tests
(tests/conftest.py starts the suite's own Redis, tests/web/test_browser.py launches Chromium).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REDIS_NAMES = ("redis-server", "valkey-server")  # Valkey is the same server under a new name
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
MACOS_BROWSERS = (
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
)
MIN_GO = (1, 21)  # the first Go that fetches the toolchain FerretDB's go.mod asks for (1.24)

# Per missing thing: why it is needed, then per system what installs it. "apt:" and "brew:"
# entries of one system are merged into one command; "#" lines are notes.
NEEDS = {
    "python": (
        "Python 3.13 (the project's venv is built with it)",
        {
            "Debian": [
                "apt:python3.13",
                "apt:python3.13-venv",
                "# Debian 12 has no python3.13: pyenv install 3.13 (the Makefile finds it)",
            ],
            "Ubuntu": [
                "apt:python3.13",
                "apt:python3.13-venv",
                "# before 25.04, first: sudo add-apt-repository ppa:deadsnakes/ppa",
            ],
            "macOS": ["brew:python@3.13"],
        },
    ),
    "go": (
        f"Go {MIN_GO[0]}.{MIN_GO[1]} or newer (builds the embedded database once, about a minute, "
        "and for `make test` Mailpit, the SMTP server of the mail transport tests, about two)",
        {
            "Debian": ["apt:golang-go", "# Debian 12's golang-go (Go 1.19) is too old: use https://go.dev/dl/"],
            "Ubuntu": ["apt:golang-go", "# Ubuntu before 24.04: its golang-go is too old, use https://go.dev/dl/"],
            "macOS": ["brew:go"],
        },
    ),
    "redis": (
        "redis-server (the suite starts its own private one on a free port; it never uses yours)",
        {"Debian": ["apt:redis-server"], "Ubuntu": ["apt:redis-server"], "macOS": ["brew:redis"]},
    ),
    "chromium": (
        "Chromium (the browser tests drive it headless)",
        {
            "Debian": ["apt:chromium"],
            "Ubuntu": [
                "make chromium",
                "sudo .venv/bin/python -m playwright install-deps chromium",
                "# Playwright's own Chromium: Ubuntu's chromium is a snap, which Playwright cannot drive",
            ],
            "macOS": ["make chromium", "# Playwright's own Chromium; an installed Google Chrome.app also works"],
        },
    ),
}
SYSTEMS = ("Debian", "Ubuntu", "macOS")


def redis_server_executable():
    """The redis-server (or valkey-server) on PATH, or None."""
    return next(filter(None, map(shutil.which, REDIS_NAMES)), None)


def chromium_executable():
    """A Chromium or Chrome on PATH under its usual names (or macOS's usual apps), or None.

    A snap (Ubuntu's `chromium`) is passed over: it has its own /tmp, where Playwright puts
    the browser profile, so it cannot be driven. None means: use Playwright's own browser
    if `playwright_chromium_installed()`.
    """
    candidates = [shutil.which(name) for name in CHROMIUM_NAMES]
    if sys.platform == "darwin":
        candidates.extend(path for path in MACOS_BROWSERS if os.access(path, os.X_OK))
    return next((path for path in candidates if path and not _is_snap(path)), None)


def playwright_browsers_dir():
    """Where `playwright install` puts browsers (PLAYWRIGHT_BROWSERS_PATH or the per-user cache)."""
    configured = os.environ.get("PLAYWRIGHT_BROWSERS_PATH")
    if configured and configured != "0":
        return Path(configured)
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "ms-playwright"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ms-playwright"


def playwright_chromium_installed():
    """True if `playwright install chromium` has put a Chromium build in its browsers directory."""
    directory = playwright_browsers_dir()
    return directory.is_dir() and any(directory.glob("chromium*-*"))


def missing(target, python=None):
    """The keys of NEEDS that this machine lacks for `make TARGET` (run or test)."""
    lacking = []
    if not (ROOT / ".venv" / "bin" / "python").exists() and not python:
        lacking.append("python")
    needs_go = not (ROOT / "var" / "bin" / "ferretdb").exists()
    if target == "test":
        needs_go = needs_go or not (ROOT / "var" / "bin" / "mailpit").exists()
    if needs_go and not _go_is_recent_enough():
        lacking.append("go")
    if target == "test":
        if not redis_server_executable():
            lacking.append("redis")
        if not chromium_executable() and not playwright_chromium_installed():
            lacking.append("chromium")
    return lacking


def message(target, lacking):
    """The text that says what is missing and the commands that install it, per system."""
    lines = [f"make {target} cannot start: this machine lacks", ""]
    lines += [f"  - {NEEDS[key][0]}" for key in lacking]
    lines += ["", f"Install, then run `make {target}` again:"]
    for system in SYSTEMS:
        entries = [entry for key in lacking for entry in NEEDS[key][1][system]]
        apt = [entry[4:] for entry in entries if entry.startswith("apt:")]
        brew = [entry[5:] for entry in entries if entry.startswith("brew:")]
        commands = (
            ([f"sudo apt-get install -y {' '.join(apt)}"] if apt else [])
            + ([f"brew install {' '.join(brew)}"] if brew else [])
            + [entry for entry in entries if not entry.startswith(("apt:", "brew:", "#"))]
            + [entry for entry in entries if entry.startswith("#")]
        )  # notes last
        lines.append(f"  {system + ':':<8}{commands[0]}")
        lines += [f"  {'':<8}{command}" for command in commands[1:]]
    return "\n".join(lines)


def main(argv=None):
    """Exit 0 when everything `make TARGET` needs is here, else print what to install and exit 1."""
    parser = argparse.ArgumentParser(description="Check what `make run` / `make test` need.")
    parser.add_argument("target", choices=("run", "test"))
    parser.add_argument("--python", default="", help="the Python 3.13 the Makefile found, if any")
    args = parser.parse_args(argv)
    lacking = missing(args.target, args.python)
    if lacking:
        print(message(args.target, lacking), file=sys.stderr)
        sys.exit(1)


def _is_snap(path):
    real = os.path.realpath(path)
    if real.startswith("/snap/") or os.path.basename(real) == "snap":
        return True
    try:  # Ubuntu's /usr/bin/chromium-browser is a script that only says "install the snap"
        with open(real, "rb") as file:
            head = file.read(4096)
    except OSError:
        return False
    return head.startswith(b"#!") and b"snap" in head


def _go_is_recent_enough():
    go = shutil.which("go")
    if not go:
        return False
    try:
        output = subprocess.run([go, "version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    found = re.search(r"go(\d+)\.(\d+)", output)
    return bool(found) and (int(found.group(1)), int(found.group(2))) >= MIN_GO


if __name__ == "__main__":
    main()
