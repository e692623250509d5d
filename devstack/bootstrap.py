"""`make run`'s last start-up step, run once by supervisord after the web app starts.

Waits until the web app answers /api/health, makes sure the admin named by ADMIN_EMAIL /
ADMIN_PASSWORD exists (see webapp/services/accounts/bootstrap.py), then prints one block:
where the site is, where mail lands and how to become admin. The block comes last, once
the site really answers, so it is the first thing a newcomer reads.

    python -m devstack.bootstrap --url http://127.0.0.1:5000 --mail-dir var/mail
"""

import argparse
import os
import sys
import time
import urllib.error
import urllib.request

HEALTH_TIMEOUT_SECONDS = 120.0
CREATE_ADMIN = ".venv/bin/flask --app wsgi create-admin"


def wait_for_health(url, timeout=HEALTH_TIMEOUT_SECONDS):
    """Poll `url`/api/health until it answers 200; False if it has not within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/api/health", timeout=2) as response:
                if response.status == 200:
                    return True
        except (OSError, urllib.error.URLError):
            pass  # not listening yet, or 503 while the database starts
        time.sleep(0.25)
    return False


def admin_lines(environ, url):
    """Ensure ADMIN_EMAIL's admin (when set) and return the lines that tell how to become admin."""
    email = (environ.get("ADMIN_EMAIL") or "").strip()
    if not email:
        return [
            f"sign up at {url}/signup, then run:",
            f"  {CREATE_ADMIN} YOUR-EMAIL",
            "(or set ADMIN_EMAIL and ADMIN_PASSWORD in .env and restart: see .env.example)",
        ]
    from webapp.app import create_app  # noqa: PLC0415 - only when there is an admin to ensure
    from webapp.services.accounts import bootstrap  # noqa: PLC0415
    from webapp.services.errors import AppError  # noqa: PLC0415

    app = create_app()
    with app.app_context():
        try:
            outcome, user = bootstrap.ensure_admin(email, environ.get("ADMIN_PASSWORD"))
        except AppError as error:
            details = "; ".join(f"{name} {message}" for name, message in error.fields.items())
            return [
                f"ADMIN_EMAIL={email} was NOT made admin: {error.message}",
                f"({details})",
                "fix .env and restart, or run:",
                f"  {CREATE_ADMIN} {email}",
            ]
    sign_in = f"sign in at {url}/login"
    if outcome == bootstrap.CREATED:
        return [f"{user.email}: created now as admin, with ADMIN_PASSWORD", sign_in]
    if outcome == bootstrap.PROMOTED:
        return [f"{user.email}: your existing account, promoted to admin", sign_in]
    if outcome == bootstrap.ALREADY_ADMIN:
        return [f"{user.email} is an admin (its password left as it was)", sign_in]
    return [
        f"{user.email} is a user whose password is not ADMIN_PASSWORD,",
        "so it was NOT promoted. If it is yours, run:",
        f"  {CREATE_ADMIN} {user.email}",
    ]


def render_block(url, mail, admin):
    """The start-up block: the URL, where mail goes, how to become admin (a list of lines)."""
    rows = [("Open", [url]), ("Mail", [mail]), ("Admin", admin), ("Stop", ["Ctrl-C stops everything"])]
    lines = [
        f"{label:<6} {text}" if i == 0 else f"{'':<6} {text}" for label, texts in rows for i, text in enumerate(texts)
    ]
    rule = "=" * max(len(line) for line in lines)
    return "\n".join(["", rule, "mailjobs is up", *lines, rule, ""])


def main(argv=None):
    """Wait for the site, ensure the admin, print the block; exit 1 if the site never answered."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the web app's base URL")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--mail-dir", help="the local mail sink's directory")
    where.add_argument("--mail-server", help="host:port of the external SMTP server")
    parser.add_argument(
        "--timeout",
        type=float,
        default=HEALTH_TIMEOUT_SECONDS,
        help="seconds to wait for the web app (default %(default)s)",
    )
    args = parser.parse_args(argv)

    if not wait_for_health(args.url, args.timeout):
        print(
            f"bootstrap: {args.url}/api/health did not answer 200 within {args.timeout:.0f} s; "
            "see the log above (a port taken? then see README, Troubleshooting)",
            flush=True,
        )
        sys.exit(1)
    if args.mail_dir:
        mail = f"every message is saved in {args.mail_dir}/ (.eml files); none leaves this machine"
    else:
        mail = f"sent through {args.mail_server} (MAIL_SERVER)"
    print(render_block(args.url, mail, admin_lines(os.environ, args.url)), flush=True)


if __name__ == "__main__":
    main()
