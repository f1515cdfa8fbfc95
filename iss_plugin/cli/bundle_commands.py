"""bundle: the bundles propagation shares between destinations (services.fanout)."""

from __future__ import annotations

import click

from .output import emit
from .state import State, command


@click.group()
def bundle() -> None:
    """Bundles built once for every destination that shares a base."""


@command(bundle, "gc")
def bundle_gc(ctx: click.Context, state: State, output: str | None) -> None:
    """Remove shared bundles no destination still needs (none has them in flight, unacknowledged)."""
    from iss_plugin.services.fanout import collect_bundles

    app = state.app
    emit(ctx, collect_bundles(app.uow(), app.settings.exports_path, app.settings.actor))


COMMANDS: tuple[click.Command, ...] = (bundle,)
