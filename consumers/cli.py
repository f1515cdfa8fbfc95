"""Commands this package adds to `iss`: `iss worker export|import|status`, `iss run` and `iss demo`.
iss_plugin/cli/main.py adds COMMANDS to the tree through the `iss_plugin.commands` entry point."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from iss_plugin.cli.output import emit, stderr, stdout, wants_json
from iss_plugin.cli.state import State, command

from .roles import ROLES

if TYPE_CHECKING:
    from iss_plugin.bootstrap import App

    from .demo import Step, Timeline


@command(None, "worker")
@click.argument("role", type=click.Choice(ROLES))
def worker(ctx: click.Context, state: State, output: str | None, role: str) -> None:
    """Consume this server's ROLE queue until SIGINT/SIGTERM (a second one exits at once)."""
    from .workers import make_worker

    _ = state.app.server_id  # a missing server id or database schema is a usage error before anything starts
    _ = state.app.engine
    _logging()
    _warn_if_unroutable(state.app)
    w = make_worker(state.app, role)

    def stop() -> None:
        w.should_stop = True

    _on_signal(stop)
    w.run()


@command(None, "run")
@click.option("--role", "roles", multiple=True, help="only these roles (default: all)")
@click.option("--serve/--no-serve", default=True, show_default=True, help="serve the dashboard on web_listen too")
def run(ctx: click.Context, state: State, output: str | None, roles: tuple[str, ...], serve: bool) -> None:
    """Every role of this server in one process: relay, export/import/status workers, watcher, reconcile,
    and the dashboard (on web_listen, default 127.0.0.1:8080)."""
    from .run import ALL_ROLES, Runtime

    _logging()
    _warn_if_unroutable(state.app)
    runtime = Runtime(state.app, roles or ALL_ROLES, listen=state.app.settings.web_listen if serve else None).start()
    done = threading.Event()
    _on_signal(done.set)
    web = f"; dashboard on {runtime.web.url}" if runtime.web else ""
    click.echo(
        f"iss {state.app.server_id}: running {', '.join(roles or ALL_ROLES)} on {state.app.settings.bus.url}{web} "
        "(Ctrl-C stops)",
        err=True,
    )
    done.wait()
    runtime.shutdown()


@click.command()
@click.option("--manual", is_flag=True, help="drive export and import by hand instead of through the bus")
@click.option("--keep", type=click.Path(file_okay=False, path_type=Path), help="build in this directory and keep it")
@click.option("--packages", default=20, show_default=True, help="packages per repository")
@click.option("--serve", is_flag=True, help="then serve the source's dashboard until Ctrl-C (not with --manual)")
@click.option("--listen", default="127.0.0.1:8080", show_default=True, help="host:port of the dashboard (--serve)")
@click.option("--output", type=click.Choice(["table", "json"]), default=None)
@click.pass_context
def demo(
    ctx: click.Context, manual: bool, keep: Path | None, packages: int, serve: bool, listen: str, output: str | None
) -> None:
    """A source and a destination on this machine (no servers): publish, propagate, import, refuse."""
    from iss_plugin.web.server import BackgroundServer, parse_listen

    from .demo import run_automatic_demo, run_manual_demo

    quiet = wants_json(ctx)
    if serve and manual:
        raise click.UsageError("--serve shows the automatic demo's source: leave out --manual")
    host, port = parse_listen(listen, "--listen") if serve else ("", 0)

    def say(line: str) -> None:
        if not quiet:
            stderr.print(line, highlight=False)

    def serve_source(src: App, login: tuple[str, str], steps: list[Step], timeline: list[Timeline]) -> None:
        _show_demo(ctx, quiet, steps, timeline)
        web = BackgroundServer(src, host, port).start()
        done = threading.Event()
        _on_signal(done.set)
        stderr.print(
            f"dashboard of the source: {web.url}\nlog in as {login[0]} with the password {login[1]}\n"
            "(the destination keeps importing what the source publishes; Ctrl-C stops and removes the demo"
            f"{'' if keep is None else ', keeping ' + str(keep)})",
            highlight=False,
        )
        done.wait()
        web.stop()

    if keep:
        keep.mkdir(parents=True, exist_ok=True)
    steps: list[Step]
    timeline: list[Timeline] = []
    if manual:
        steps = run_manual_demo(keep, packages, say=say)
    else:
        steps, timeline = run_automatic_demo(keep, packages, say=say, serve=serve_source if serve else None)
    if not serve:
        _show_demo(ctx, quiet, steps, timeline)


def _show_demo(ctx: click.Context, quiet: bool, steps: list[Step], timeline: list[Timeline]) -> None:
    from rich.table import Table

    rows = [{"step": s.step, "result": s.result, "detail": s.detail, "seconds": round(s.seconds, 3)} for s in steps]
    times = [
        {
            "version": t.version,
            "bundle": t.kind,
            "bundle_ready_s": round(t.bundle_ready - t.published, 3),
            "live_s": round(t.latency, 3),
        }
        for t in timeline
    ]
    if quiet:
        emit(ctx, {"steps": rows, "timeline": times})
        return
    table = Table("step", "result", "detail", "seconds", title="iss demo: source -> destination (embedded)")
    for r in rows:
        table.add_row(str(r["step"]), str(r["result"]), str(r["detail"]), f"{r['seconds']:.3f}")
    stdout.print(table)
    if times:
        t = Table(
            "version",
            "bundle",
            "published",
            "bundle ready",
            "live on destination",
            title="timeline (seconds after publish)",
        )
        for x in times:
            t.add_row(str(x["version"]), str(x["bundle"]), "0.000", f"{x['bundle_ready_s']:.3f}", f"{x['live_s']:.3f}")
        stdout.print(t)


COMMANDS: tuple[click.Command, ...] = (worker, run, demo)


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(threadName)s %(levelname)s %(message)s")


def _warn_if_unroutable(app: App) -> None:
    """A warning when unroutable messages wait; a broker that does not answer does not stop the start
    (the worker's own connection retries and says so)."""
    from iss_plugin.services import unroutable

    log = logging.getLogger("iss")
    try:
        warning = unroutable.startup_warning(app)
    except Exception as e:
        log.info("could not count the unroutable messages (%s); starting anyway", e)
        return
    if warning:
        log.warning(warning)


def _on_signal(stop: Callable[[], None]) -> None:
    """The first SIGINT/SIGTERM asks `stop()` for a clean stop; a second one exits at once."""
    asked: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        if asked:
            os.write(2, f"iss: second {signal.Signals(signum).name}: exiting now\n".encode())
            os._exit(128 + signum)
        asked.append(signum)
        logging.getLogger("iss").info("%s: stopping (send it again to exit at once)", signal.Signals(signum).name)
        stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
