"""`iss serve`: the web dashboard, /metrics and the JSON API under /api/v1 (uvicorn, foreground)."""

from __future__ import annotations

import click

from .output import stderr
from .state import State, command


@command(None, "serve")
@click.option("--host", default=None, help="address to listen on (default: from web_listen, 127.0.0.1)")
@click.option("--port", type=int, default=None, help="port (default: from web_listen, 8080)")
def serve(ctx: click.Context, state: State, output: str | None, host: str | None, port: int | None) -> None:
    """Serve the dashboard and the API until SIGINT/SIGTERM (log in with an iss user: `iss user create`)."""
    from iss_plugin.web.server import make_server, parse_listen, url_of

    default_host, default_port = parse_listen(state.app.settings.web_listen)
    _ = state.app.engine  # a missing schema is a usage error before anything listens
    host, port = host or default_host, port or default_port
    stderr.print(f"iss {state.app.server_id}: dashboard on {url_of(host, port)} (Ctrl-C stops)", highlight=False)
    make_server(state.app, host, port).run()


COMMANDS: tuple[click.Command, ...] = (serve,)
