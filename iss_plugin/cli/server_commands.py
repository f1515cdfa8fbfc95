"""init, db and keys: this server's data directory, schema and signing key."""

from __future__ import annotations

import click

from .identity import first_administrator
from .output import emit
from .state import State, command


@command(None, "init", authenticated=False)
def init(ctx: click.Context, state: State, output: str | None) -> None:
    """Create the data directory, migrate the database, make the server's Ed25519 key pair, the first
    administrator (its password printed once, its token in <data_dir>/credentials) and the service accounts."""
    from iss_plugin.services.server_setup import initialize

    emit(ctx, {**initialize(state.app.settings), **first_administrator(state.app)})


@click.group()
def db() -> None:
    """Database schema."""


@command(db, "upgrade", authenticated=False)
def db_upgrade(ctx: click.Context, state: State, output: str | None) -> None:
    """Apply the Alembic migrations."""
    from iss_plugin.adapters.db import migrate

    migrate.upgrade(state.app.settings.db_url)
    emit(ctx, {"schema": migrate.current(state.app.settings.db_url)})


@click.group()
def keys() -> None:
    """The server's signing key."""


@command(keys, "show", authenticated=False)
def keys_show(ctx: click.Context, state: State, output: str | None) -> None:
    """Print the public key (PEM) and its fingerprint, to give to destinations (`iss trust add`)."""
    signer = state.app.signer
    if ctx.find_root().params.get("output") == "json" or output == "json":
        emit(
            ctx, {"server_id": state.app.server_id, "fingerprint": signer.fingerprint, "public_key": signer.public_pem}
        )
    else:
        click.echo(f"# server {state.app.server_id}\n# fingerprint {signer.fingerprint}")
        click.echo(signer.public_pem, nl=False)


COMMANDS: tuple[click.Command, ...] = (init, db, keys)
