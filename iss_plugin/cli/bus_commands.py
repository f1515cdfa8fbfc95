"""destination, subscriptions and reconcile (automatic propagation); the relay; `bus unroutable`."""

from __future__ import annotations

from pathlib import Path

import click

from .output import emit, wants_json
from .state import State, command


@click.group()
def destination() -> None:
    """Downstream servers this source feeds."""


@command(destination, "add")
@click.option("--name", required=True)
@click.option("--server-id", required=True, help="the destination's server id (`iss keys show` there)")
@click.option("--public-key", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--online", is_flag=True, help="push each bundle's stream to the destination's --url (no bundle file)")
@click.option("--url", help="the destination's `iss serve` address (with --online)")
def destination_add(
    ctx: click.Context,
    state: State,
    output: str | None,
    name: str,
    server_id: str,
    public_key: Path,
    online: bool,
    url: str | None,
) -> None:
    from iss_plugin.adapters.bundles.signing import read_public_key_file
    from iss_plugin.domain.errors import UsageError
    from iss_plugin.services import subscriptions

    if online != (url is not None):
        raise UsageError("--online and --url go together: an online destination is pushed to at its --url")
    emit(
        ctx,
        subscriptions.add_destination(
            state.app.uow(), name, server_id, read_public_key_file(public_key), state.app.settings.actor, url=url
        ),
    )


@command(destination, "update")
@click.option("--name", required=True, help="destination name")
@click.option("--online", is_flag=True, help="push each bundle's stream to the destination's --url (no bundle file)")
@click.option("--offline", is_flag=True, help="write bundle files again (announced on the bus); forgets the url")
@click.option("--url", help="the destination's `iss serve` address (with --online)")
def destination_update(
    ctx: click.Context, state: State, output: str | None, name: str, online: bool, offline: bool, url: str | None
) -> None:
    """Make a destination online (pushed to at --url) or offline (bundle files)."""
    from iss_plugin.domain.errors import UsageError
    from iss_plugin.services import subscriptions

    if online == offline:
        raise UsageError("give one of --online --url URL or --offline")
    if online != (url is not None):
        raise UsageError("--online and --url go together: an online destination is pushed to at its --url")
    emit(ctx, subscriptions.update_destination(state.app.uow(), name, url, state.app.settings.actor))


@command(destination, "subscribe")
@click.option("--name", "destination_name", required=True, help="destination name")
@click.option("--organization", required=True)
@click.option("--content-view", help="a content view label (only blessed views propagate)")
@click.option("--repository", metavar="PRODUCT/REPO", help="a Library repository")
def destination_subscribe(
    ctx: click.Context,
    state: State,
    output: str | None,
    destination_name: str,
    organization: str,
    content_view: str | None,
    repository: str | None,
) -> None:
    from iss_plugin.services import subscriptions

    emit(
        ctx,
        subscriptions.subscribe(
            state.app.uow(), destination_name, organization, content_view, repository, state.app.settings.actor
        ),
    )


@command(destination, "list")
def destination_list(ctx: click.Context, state: State, output: str | None) -> None:
    """Subscriptions (what each destination acknowledged, has in flight, refused) and destinations
    with none yet; online destinations are pushed to at their url."""
    from iss_plugin.services import subscriptions

    rows = subscriptions.list_destinations_and_subscriptions(state.app.uow())
    if wants_json(ctx) or not rows:
        emit(ctx, rows)
        return
    listed = {r["destination"]: r for r in rows}.values()  # one per destination, in order
    emit(
        ctx,
        [
            {"name": r["destination"], "server id": r["server_id"], "online": r["online"], "url": r["url"]}
            for r in listed
        ],
        title="Destinations",
    )
    subscribed = [
        {
            "destination": r["destination"],
            "organization": r["organization"],
            "subscribed to": f"content view {r['content_view']}"
            if r["content_view"]
            else f"repository {r['repository']}",
            "acknowledged": r["acknowledged"],
            "in flight": r["in_flight"],
            "rejections": r["rejections"],
            "last rejection": r["last_rejection"],
        }
        for r in rows
        if r["organization"]
    ]
    if subscribed:
        emit(ctx, subscribed, title="Subscriptions")


@command(None, "reconcile")
@click.option(
    "--now",
    "resend_in_flight",
    is_flag=True,
    help="also re-send bundles still in flight or backing off after refusals (the destination was fixed)",
)
def reconcile(ctx: click.Context, state: State, output: str | None, resend_in_flight: bool) -> None:
    """Re-emit every subscription whose destination is behind (nothing in flight for the grace time,
    longer after refusals in a row)."""
    from iss_plugin.services import propagation

    made = propagation.reconcile(state.app.uow(), state.app.source_context(), resend_in_flight=resend_in_flight)
    emit(
        ctx,
        [
            {
                "destination": m["destination"],
                "bundle_id": m["bundle_id"],
                "kind": m["kind"],
                "version": m.get("version"),
                "path": m["path"],
            }
            for m in made
        ],
    )


@command(None, "relay")
@click.option("--once", is_flag=True, help="one pass: publish what is unsent, print the counts, exit")
def relay(ctx: click.Context, state: State, output: str | None, once: bool) -> None:
    """Publish outbox events to the bus; rows are marked sent only after the broker confirmed them."""
    import signal
    import threading

    from iss_plugin.adapters.bus.relay import relay_from_settings

    app = state.app
    r = relay_from_settings(app.settings, app.session_factory, poll_interval=0.1)
    try:
        if once:
            res = r.run_once()
            emit(ctx, {"published": res.published, "unconfirmed": res.unconfirmed, "error": res.error})
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        r.run_forever(stop)
    finally:
        r.close()


@click.group()
def bus() -> None:
    """The message bus (RabbitMQ) of this server."""


@bus.group()
def unroutable() -> None:
    """Messages no queue took, kept by the exchange's alternate exchange in `<prefix>.unroutable`."""


@command(unroutable, "list")
@click.option("--limit", type=int, default=50, show_default=True, help="show at most this many (all are counted)")
def unroutable_list(ctx: click.Context, state: State, output: str | None, limit: int) -> None:
    """What waits in the unroutable queue, head first; reads every message and puts it back in its place."""
    from iss_plugin.services import unroutable as service

    found = service.list_unroutable(state.app, limit)
    rows = [
        {
            "position": m.position,
            "event_id": m.event_id,
            "type": m.event_type,
            "routing_key": m.routing_key,
            "source": m.source,
            "time": m.time,
        }
        for m in found.messages
    ]
    if wants_json(ctx):
        emit(ctx, {"queue": found.queue, "total": found.total, "shown": len(rows), "messages": rows})
        return
    emit(ctx, rows, title=f"{found.queue}: {len(rows)} of {found.total} shown")


@command(unroutable, "replay")
@click.option("--event-id", "event_ids", multiple=True, metavar="ID", help="an event id from `list` (repeatable)")
@click.option("--all", "replay_all", is_flag=True, help="every message in the queue")
def unroutable_replay(
    ctx: click.Context, state: State, output: str | None, event_ids: tuple[str, ...], replay_all: bool
) -> None:
    """Republish to the exchange with the original routing key (confirmed, mandatory), in queue order.
    A message still unroutable stays where it was. Exit 0 all replayed, 1 some stayed, 2 an id was
    not found (nothing changed for it; the others were replayed)."""
    from iss_plugin.domain.errors import EXIT_RUNTIME, EXIT_USAGE
    from iss_plugin.services import unroutable as service

    report = service.replay(state.app, event_ids, replay_all, state.app.settings.actor)
    rows = [
        {
            "event_id": o.event_id,
            "outcome": o.outcome,
            "type": o.event_type,
            "routing_key": o.routing_key,
            "detail": o.detail,
        }
        for o in report.outcomes
    ]
    counts = {k: len(report.having(k)) for k in (service.REPLAYED, service.STAYED, service.NOT_FOUND)}
    if wants_json(ctx):
        emit(ctx, {"exchange": report.exchange, "queue": report.queue, **counts, "messages": rows})
    else:
        emit(ctx, [{k: v for k, v in r.items() if k != "detail"} for r in rows], title=f"replay from {report.queue}")
        for o in report.outcomes:  # whole lines, not a wrapped column: what to do about each
            if o.outcome != service.REPLAYED:
                click.echo(f"{o.outcome}: {o.event_id}: {o.detail}")
        click.echo(", ".join(f"{n} {k}" for k, n in counts.items()) + f" (exchange {report.exchange})")
    if counts[service.NOT_FOUND]:
        ctx.exit(EXIT_USAGE)
    if counts[service.STAYED]:
        ctx.exit(EXIT_RUNTIME)


COMMANDS: tuple[click.Command, ...] = (destination, reconcile, relay, bus)
