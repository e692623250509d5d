"""Command-line tasks: `flask --app wsgi create-admin EMAIL`."""

import os

import click

from webapp.errors import AppError
from webapp.services import accounts
from webapp.services.validation import MIN_PASSWORD_CHARS


@click.command("create-admin")
@click.argument("email")
def create_admin(email):
    """Create EMAIL as an admin, or promote the existing account.

    The password (only needed for a new account) comes from ADMIN_PASSWORD or a prompt.
    """
    password = None
    if accounts.find_user_by_email(email) is None:
        password = os.environ.get("ADMIN_PASSWORD") or click.prompt(
            "Password for the new admin", hide_input=True, confirmation_prompt=True
        )
        if len(password) < MIN_PASSWORD_CHARS:
            raise click.ClickException(f"The password needs at least {MIN_PASSWORD_CHARS} characters.")
    try:
        user = accounts.create_or_promote_admin(email, password)
    except AppError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"{user.email} is an admin.")


def register_commands(app):
    app.cli.add_command(create_admin)
