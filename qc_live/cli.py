"""Command-line tools: `flask --app qc_live create-user NAME --role reviewer`."""
import click
from flask import Blueprint, current_app

from .errors import QCError
from .extensions import db
from .models import Role

bp = Blueprint("cli", __name__, cli_group=None)


@bp.cli.command("create-user")
@click.argument("username")
@click.option("--role", type=click.Choice([r.value for r in Role]), default="reviewer")
@click.password_option(help="Asked for (twice) when not given.")
def create_user_command(username, role, password):
    """Create a user account."""
    from . import prepare_database
    from .accounts import create_user
    from .text import MIN_PASSWORD
    from .schema import SchemaError
    if len(password) < MIN_PASSWORD:
        raise click.ClickException(f"the password needs at least {MIN_PASSWORD} characters")
    try:
        prepare_database(current_app)
    except SchemaError as error:
        raise click.ClickException(str(error)) from None
    try:
        user = create_user(db.session, username, password, Role(role))
    except QCError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"created {role} {username!r} (id {user.id})")
