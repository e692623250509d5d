"""Decide what the dev stack runs, from the environment alone.

`make_plan` is pure (no files, no processes), so which parts are embedded and what the
children see can be unit-tested without starting anything.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from webapp.config import DEFAULT_FERRETDB_PORT
from webapp.config import embedded_mongodb_uri

# Embedded services start first so the web app and the worker find them on their first try.
SERVICE_PRIORITY = 10
APP_PRIORITY = 20
# The bootstrap runs last: it waits for the web app, then ensures the admin and says hello.
BOOTSTRAP_PRIORITY = 30


@dataclass(frozen=True)
class Program:
    """One process for supervisord to run and restart."""

    name: str
    command: list[str]
    priority: int = APP_PRIORITY
    stopsignal: str = "TERM"
    stopwaitsecs: int = 10
    # Runs once and exits (the bootstrap): never restarted, a quick exit is not a failure.
    oneshot: bool = False


@dataclass(frozen=True)
class Plan:
    """Everything the stack needs: processes, the children's environment, what to tell the user."""

    programs: list[Program]
    child_env: dict[str, str]
    directories: list[Path]
    summary: list[str] = field(default_factory=list)
    url: str = ""
    # The ports the stack will listen on, by the variable that moves each one.
    ports: dict[str, int] = field(default_factory=dict)


def make_plan(env: Mapping[str, str], root: Path, bin_dir: Path) -> Plan:
    """Return the programs and child environment for `env`, a project at `root`, a venv at `bin_dir`.

    An unset (or empty) MONGODB_URI, REDIS_URL or MAIL_SERVER means "run it here": FerretDB,
    SqliteHuey under var/, and the local mail sink. A set one is passed through untouched.
    """
    var = root / "var"
    child_env = dict(env)
    child_env["PYTHONUNBUFFERED"] = "1"
    # Absolute command paths already pin the venv; PATH covers whatever the app shells out to.
    child_env["PATH"] = os.pathsep.join(p for p in (str(bin_dir), env.get("PATH", "")) if p)
    programs = []
    directories = []
    summary = []
    ports = {}

    if env.get("MONGODB_URI"):
        summary.append("MongoDB: external (MONGODB_URI)")
    else:
        port = _port(env, "FERRETDB_PORT", DEFAULT_FERRETDB_PORT)
        ports["FERRETDB_PORT"] = port
        data = var / "ferretdb"
        programs.append(_ferretdb(root, data, port))
        directories.append(data)
        child_env["MONGODB_URI"] = embedded_mongodb_uri(port)
        summary.append(f"MongoDB: embedded FerretDB on 127.0.0.1:{port}, data in {data}")

    if env.get("REDIS_URL"):
        summary.append("Queue:   external Redis (REDIS_URL)")
    else:
        huey_db = root / (env.get("HUEY_SQLITE_PATH") or "var/huey.db")
        child_env["HUEY_SQLITE_PATH"] = str(huey_db)
        directories.append(huey_db.parent)
        summary.append(f"Queue:   embedded SqliteHuey at {huey_db}")

    if env.get("MAIL_SERVER"):
        port = env.get("MAIL_PORT") or "(default port)"
        mail_where = ["--mail-server", f"{env['MAIL_SERVER']}:{port}"]
        summary.append(f"Mail:    external SMTP {env['MAIL_SERVER']}:{port}")
    else:
        port = _port(env, "MAIL_PORT", 8025)
        ports["MAIL_PORT"] = port
        mail_dir = var / "mail"
        mail_where = ["--mail-dir", str(mail_dir.relative_to(root))]
        programs.append(_mail_sink(bin_dir, mail_dir, port))
        directories.append(mail_dir)
        child_env["MAIL_SERVER"] = "127.0.0.1"
        child_env["MAIL_PORT"] = str(port)
        summary.append(f"Mail:    embedded sink on 127.0.0.1:{port}, messages in {mail_dir}")

    web_port = _port(env, "PORT", 5000)
    ports["PORT"] = web_port
    url = f"http://127.0.0.1:{web_port}"
    programs.append(_web(root, bin_dir, web_port, _count(env, "WEB_CONCURRENCY", 2)))
    programs.append(_worker(bin_dir, _count(env, "HUEY_WORKERS", 4)))
    programs.append(_bootstrap(bin_dir, url, mail_where))
    return Plan(programs=programs, child_env=child_env, directories=directories, summary=summary, url=url, ports=ports)


def _ferretdb(root: Path, data: Path, port: int) -> Program:
    return Program(
        name="ferretdb",
        command=[
            str(root / "var" / "bin" / "ferretdb"),
            "--handler=sqlite",
            f"--sqlite-url=file:{data}/",
            f"--listen-addr=127.0.0.1:{port}",
            f"--state-dir={data}",
            # "-" switches the metrics/pprof listener off (FerretDB v1 cmd/ferretdb/main.go),
            # so two stacks, or the test suite's servers, never fight over 127.0.0.1:8088.
            "--debug-addr=-",
            "--telemetry=disable",
            "--log-level=warn",
        ],
        priority=SERVICE_PRIORITY,
    )


def _mail_sink(bin_dir: Path, mail_dir: Path, port: int) -> Program:
    return Program(
        name="mailsink",
        command=[
            str(bin_dir / "python"),
            "-m",
            "devstack.mail_sink",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(mail_dir),
        ],
        priority=SERVICE_PRIORITY,
    )


def _web(root: Path, bin_dir: Path, port: int, workers: int) -> Program:
    # gunicorn.conf.py is the one config compose uses too (gevent workers, keep-alive and
    # header timeout, no control socket); only the address differs here.
    return Program(
        name="web",
        command=[
            str(bin_dir / "gunicorn"),
            "--config",
            str(root / "gunicorn.conf.py"),
            "wsgi:app",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
        ],
    )


def _worker(bin_dir: Path, workers: int) -> Program:
    return Program(
        name="worker",
        command=[
            str(bin_dir / "huey_consumer"),
            "worker.huey",
            "--workers",
            str(workers),
            "--worker-type",
            "thread",
            "--scheduler-interval",
            "1",
            # SqliteHuey is polled: cap the idle back-off so a new job starts within 0.25 s.
            "--max-delay",
            "0.25",
            # SIGTERM is the graceful one (sends in flight finish); SIGINT then means "now",
            # and a job cut short comes back when its lease runs out. See docs/delivery.md.
            "--graceful-signal",
            "TERM",
        ],
        stopsignal="TERM",
        stopwaitsecs=30,
    )


def _bootstrap(bin_dir: Path, url: str, mail_where: list[str]) -> Program:
    return Program(
        name="bootstrap",
        command=[str(bin_dir / "python"), "-m", "devstack.bootstrap", "--url", url, *mail_where],
        priority=BOOTSTRAP_PRIORITY,
        oneshot=True,
    )


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    port = _count(env, name, default)
    if not 0 < port < 65536:
        raise ValueError(f"{name}={port} is not a TCP port")
    return port


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name) or str(default)
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
