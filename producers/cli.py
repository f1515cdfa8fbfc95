"""`iss watch`, which iss_plugin/cli/main.py adds to the tree through the `iss_plugin.commands` entry point."""

from __future__ import annotations

import signal
import threading

import click

from iss_plugin.cli.output import emit
from iss_plugin.cli.state import State, command


@command(None, "watch")
@click.option("--once", is_flag=True, help="one pass, print what was announced, exit")
@click.option("--interval", default=5.0, show_default=True, help="seconds between passes")
def watch(ctx: click.Context, state: State, output: str | None, once: bool, interval: float) -> None:
    """Announce new repository versions in the backend (iss.repository.changed.v1), once each."""
    from .repository_watcher import watch_forever, watch_once

    if once:
        emit(ctx, watch_once(state.app))
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    watch_forever(state.app, stop, interval)


COMMANDS: tuple[click.Command, ...] = (watch,)
