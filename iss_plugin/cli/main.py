"""The command tree, built in this one place. Exit codes: 0 ok, 1 runtime error, 2 usage, 3 rejected input,
4 forbidden (not authenticated or not permitted).

Every command group is added here: this package's command modules, then the commands of the
`iss_plugin.commands` entry points (consumers/ and producers/ bring the workers, `iss run`,
`iss demo` and `iss watch` that way, so that iss_plugin never imports them). Command modules
import only state.py and output.py, never this module."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import click

from . import (
    bundle_commands,
    bus_commands,
    catalog_commands,
    content_commands,
    identity_commands,
    product_key_commands,
    server_commands,
    transfer_commands,
    web_commands,
)
from .noise import quiet_third_party_noise
from .state import State

DISTRIBUTION = "iss"


def build_cli() -> click.Group:
    """A fresh `iss` group holding every command."""

    @click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
    @click.version_option(package_name=DISTRIBUTION, prog_name="iss", message="%(prog)s %(version)s")
    @click.option(
        "--config",
        type=click.Path(path_type=Path),
        envvar="ISS_CONFIG",
        help="settings TOML (default /etc/iss/settings.toml); ISS_* variables override it",
    )
    @click.option("--output", type=click.Choice(["table", "json"]), default="table", help="table or json for scripts")
    @click.option("--user", "login", help="act as this user (password: ISS_PASSWORD or a prompt); else ISS_TOKEN")
    @click.pass_context
    def iss(ctx: click.Context, config: Path | None, output: str, login: str | None) -> None:
        """iss: Inter-Server Sync of yum content between Katello/Pulp servers."""
        state = State(config, login)
        ctx.obj = state
        ctx.call_on_close(state.close)

    for command in _all_commands():
        iss.add_command(command)
    return iss


def _all_commands() -> Iterator[click.Command]:
    modules = (
        server_commands,
        catalog_commands,
        content_commands,
        product_key_commands,
        identity_commands,
        transfer_commands,
        bus_commands,
        web_commands,
        bundle_commands,
    )
    for module in modules:
        yield from module.COMMANDS
    for ep in entry_points(group="iss_plugin.commands"):
        yield from ep.load()


def main() -> None:
    quiet_third_party_noise()
    build_cli()(prog_name="iss")
