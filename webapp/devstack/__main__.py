"""`python -m webapp.devstack`: run the whole stack in the foreground until Ctrl-C.

Reads the environment (then `.env`), writes var/supervisord.conf and becomes supervisord,
which runs every process, restarts any that dies, and stops them all on Ctrl-C.
"""

import os
import sys
from pathlib import Path

from webapp.devstack.environment import read_environment
from webapp.devstack.plan import make_plan
from webapp.devstack.supervisor_conf import render

ROOT = Path(__file__).resolve().parents[2]


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
    for directory in plan.directories:
        directory.mkdir(parents=True, exist_ok=True)

    conf = ROOT / "var" / "supervisord.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(render(plan, ROOT))

    print("devstack:", *plan.summary, sep="\n  ")
    print(f"  open {plan.url}   (Ctrl-C stops everything)\n", flush=True)
    os.chdir(ROOT)
    # execve, not a child: Ctrl-C and `kill` reach supervisord directly, which stops the
    # children in order; the children inherit child_env (supervisord passes its own on).
    os.execve(supervisord, [str(supervisord), "-n", "-c", str(conf)], plan.child_env)


if __name__ == "__main__":
    main()
