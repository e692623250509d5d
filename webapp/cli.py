"""Command-line tasks: `flask --app wsgi create-admin EMAIL`, `flask --app wsgi sweep`."""

import os
import time

import click
from flask import current_app
from flask.cli import with_appcontext
from pymongo.errors import ConnectionFailure

from webapp.services.accounts import users
from webapp.services.errors import AppError
from webapp.services.validation import MIN_PASSWORD_CHARS


@click.command("create-admin")
@click.argument("email")
def create_admin(email):
    """Create EMAIL as an admin, or promote the existing account.

    The password (only needed for a new account) comes from ADMIN_PASSWORD or a prompt.
    """
    password = None
    if users.find_user_by_email(email) is None:
        password = os.environ.get("ADMIN_PASSWORD") or click.prompt(
            "Password for the new admin", hide_input=True, confirmation_prompt=True
        )
        if len(password) < MIN_PASSWORD_CHARS:
            raise click.ClickException(f"The password needs at least {MIN_PASSWORD_CHARS} characters.")
    try:
        user = users.create_or_promote_admin(email, password)
    except AppError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"{user.email} is an admin.")


@click.command("sweep")
@click.option(
    "--every",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Keep sweeping every SECONDS until interrupted (default: sweep once).",
)
@click.option(
    "--grace",
    type=float,
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="Queue again a due job still PENDING after this long.",
)
@with_appcontext
def sweep(every, grace):
    """Run the delivery sweep now: recover expired leases, queue due jobs nobody queued.

    The consumers already run it every minute; this is for operators (after
    an outage, say) and for extra pollers. Safe alongside any number of them.
    """
    from tasks.sweeper import sweep_once  # noqa: PLC0415 - the queue is only needed here

    while True:
        try:
            counts = sweep_once(current_app, grace_seconds=grace)
        except ConnectionFailure as exc:
            if every is None:
                raise click.ClickException(f"database unreachable: {exc}") from None
            click.echo(f"database unreachable, trying again: {exc}", err=True)
        else:
            click.echo(
                f"recovered {counts['recovered']}, expired {counts['expired']}, "
                f"occurrences made {counts['made']}, re-queued {counts['requeued']}, "
                f"revocations purged {counts['purged']}"
            )
        if every is None:
            return
        time.sleep(every)


def register_commands(app):
    app.cli.add_command(create_admin)
    app.cli.add_command(sweep)
