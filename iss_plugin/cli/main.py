"""The command tree. Exit codes: 0 ok, 1 runtime error, 2 usage, 3 rejected input, 4 forbidden."""

from __future__ import annotations

from pathlib import Path

import click

from iss_plugin.bootstrap import App
from iss_plugin.settings import load_settings

from .identity import acting
from .output import emit, handle_errors, output_option


class State:
    def __init__(self, config: Path | None, login: str | None = None):
        self.config = config
        self.login = login  # --user; see cli/identity.py for how the acting identity is found
        self.identity = None
        self._app: App | None = None

    @property
    def app(self) -> App:
        if self._app is None:
            self._app = App(load_settings(self.config))
        return self._app


pass_state = click.make_pass_decorator(State)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    type=click.Path(path_type=Path),
    envvar="ISS_CONFIG",
    help="settings TOML (default /etc/iss/settings.toml); ISS_* variables override it",
)
@click.option("--output", type=click.Choice(["table", "json"]), default="table", help="table or json for scripts")
@click.option("--user", "login", help="act as this user (password: ISS_PASSWORD or a prompt); else ISS_TOKEN")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, output: str, login: str | None) -> None:
    """iss: Inter-Server Sync of yum content between Katello/Pulp servers."""
    state = State(config, login)
    ctx.obj = state
    ctx.call_on_close(lambda: state._app and state._app.close())


@cli.command()
@output_option
@pass_state
@click.pass_context
@handle_errors
def init(ctx, state: State, output):
    """Create the data directory, migrate the database, make the server's Ed25519 key pair, the first
    administrator (its password printed once, its token in <data_dir>/credentials) and the service accounts."""
    from iss_plugin.services.server_setup import initialize

    from .identity_commands import first_administrator

    emit(ctx, initialize(state.app.settings) | first_administrator(state.app))


@cli.group()
def db():
    """Database schema."""


@db.command("upgrade")
@output_option
@pass_state
@click.pass_context
@handle_errors
def db_upgrade(ctx, state: State, output):
    """Apply the Alembic migrations."""
    from iss_plugin.adapters.db import migrate

    migrate.upgrade(state.app.settings.db_url)
    emit(ctx, {"schema": migrate.current(state.app.settings.db_url)})


@cli.group()
def keys():
    """The server's signing key."""


@keys.command("show")
@output_option
@pass_state
@click.pass_context
@handle_errors
def keys_show(ctx, state: State, output):
    """Print the public key (PEM) and its fingerprint, to give to destinations (`iss trust add`)."""
    signer = state.app.signer
    if ctx.find_root().params.get("output") == "json" or output == "json":
        emit(
            ctx, {"server_id": state.app.server_id, "fingerprint": signer.fingerprint, "public_key": signer.public_pem}
        )
    else:
        click.echo(f"# server {state.app.server_id}\n# fingerprint {signer.fingerprint}")
        click.echo(signer.public_pem, nl=False)


_built = False


def build_cli() -> click.Group:
    """The command tree: this package's commands, then those of the `iss_plugin.commands` entry
    points (consumers/ and producers/ add the workers, `iss run` and `iss watch` that way, so that
    iss_plugin never imports them)."""
    global _built
    from importlib.metadata import entry_points

    from . import bus_commands, catalog_commands, identity_commands, transfer_commands  # noqa: F401

    if not _built:
        identity_commands.register(cli)
        for ep in entry_points(group="iss_plugin.commands"):
            ep.load()(cli)
        _built = True
    return cli


def main() -> None:
    build_cli()(prog_name="iss")


def command(group: click.Group, *args, **kwargs):
    """A subcommand with --output, the State, the context and the error policy wired in."""

    def deco(f):
        wrapped = handle_errors(acting(f))  # acting: who runs it, and may they (cli/identity.py)
        return group.command(*args, **kwargs)(output_option(pass_state(click.pass_context(wrapped))))

    return deco


def source_id(state: State) -> str:
    return state.app.server_id
