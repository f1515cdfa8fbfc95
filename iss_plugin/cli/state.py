"""What every command module shares: the per-invocation State (settings and the wired App, made on
first use) and `command`, which wires --output, the State, the context and the error policy into
a subcommand. Command modules import this and output.py, never the module that builds the tree."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from iss_plugin.domain.policy import Identity

from .identity import acting
from .output import handle_errors, output_option

if TYPE_CHECKING:
    from iss_plugin.bootstrap import App


class State:
    def __init__(self, config: Path | None, login: str | None = None):
        self.config = config
        self.login = login  # --user; see cli/identity.py for how the acting identity is found
        self.identity: Identity | None = None
        self._app: App | None = None

    @property
    def app(self) -> App:
        if self._app is None:
            from iss_plugin.bootstrap import App  # not at import: `iss --help` stays cheap
            from iss_plugin.settings import load_settings

            self._app = App(load_settings(self.config))
        return self._app

    def close(self) -> None:
        if self._app is not None:
            self._app.close()


pass_state = click.make_pass_decorator(State)


def command(
    parent: click.Group | None, name: str, *, authenticated: bool = True
) -> Callable[[Callable[..., None]], click.Command]:
    """A command with --output, the State, the context, the acting identity and the error policy
    wired in: the callback takes (ctx, state, output, **options). `acting` (cli/identity.py) finds
    who runs it and checks the command's permission; `authenticated=False` only for the commands
    that must run before there is anybody to log in as (init, db upgrade) or that show public
    information (keys show). Added to `parent`, or (parent None) returned for the tree builder."""

    def deco(f: Callable[..., None]) -> click.Command:
        body = acting(f) if authenticated else f
        cmd = click.command(name)(output_option(pass_state(click.pass_context(handle_errors(body)))))
        if parent is not None:
            parent.add_command(cmd)
        return cmd

    return deco


def source_id(state: State) -> str:
    return state.app.server_id
