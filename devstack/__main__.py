"""`python -m devstack`: run the whole stack in the foreground until Ctrl-C.

Reads the environment (then `.env`), writes var/supervisord.conf and becomes supervisord,
which runs every process, restarts any that dies, and stops them all on Ctrl-C.
"""

import os
import socket
import sys
from pathlib import Path

from devstack.environment import read_environment
from devstack.plan import make_plan
from devstack.supervisor_conf import render

# The project: devstack/ sits at its top.
ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Plan the stack, write its supervisord config, print what runs where, exec supervisord."""
    # Not resolved: the venv's bin/ is where gunicorn, huey_consumer and supervisord live.
    bin_dir = Path(sys.executable).parent
    supervisord = bin_dir / "supervisord"
    if not supervisord.exists():
        sys.exit(f"{supervisord} not found: run this with the project venv's python (make run)")

    env = read_environment(os.environ, ROOT / ".env")
    try:
        plan = make_plan(env, ROOT, bin_dir)
    except ValueError as error:
        sys.exit(f"devstack: {error}")
    for program in plan.programs:
        if not Path(program.command[0]).exists():
            sys.exit(f"devstack: {program.command[0]} not found (try `make run`, which builds it)")
    taken = taken_ports(plan.ports)
    if taken:
        sys.exit(taken_ports_message(taken))
    for directory in plan.directories:
        directory.mkdir(parents=True, exist_ok=True)

    conf = ROOT / "var" / "supervisord.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(render(plan, ROOT))

    print("devstack:", *plan.summary, sep="\n  ")
    print(f"  starting; {plan.url} is announced below once it answers (Ctrl-C stops everything)\n", flush=True)
    os.chdir(ROOT)
    # execve, not a child: Ctrl-C and `kill` reach supervisord directly, which stops the
    # children in order; the children inherit child_env (supervisord passes its own on).
    os.execve(supervisord, [str(supervisord), "-n", "-c", str(conf)], plan.child_env)


def taken_ports(ports):
    """The (variable, port) pairs of `ports` that something on 127.0.0.1 already listens on.

    Checked with SO_REUSEADDR, as the servers bind, so a port a stopped stack left in
    TIME_WAIT counts as free and only a live listener counts as taken.
    """
    return [(name, port) for name, port in ports.items() if not _can_bind(port)]


def taken_ports_message(taken):
    """What to tell the user about `taken` (variable, port) pairs, with free ports to use instead."""
    lines = [f"  {name}={port}" for name, port in taken]
    suggestion = " ".join(f"{name}={_free_port_after(port)}" for name, port in taken)
    return "\n".join(
        [
            "devstack: another program already listens on:",
            *lines,
            f"Move the stack in .env or in the shell, e.g.:  {suggestion} make run",
            "(the flask CLI and the workers follow FERRETDB_PORT too; README: Troubleshooting)",
        ]
    )


def _can_bind(port):
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port_after(port):
    return next((candidate for candidate in range(port + 1, min(port + 200, 65536)) if _can_bind(candidate)), port + 1)


if __name__ == "__main__":
    main()
