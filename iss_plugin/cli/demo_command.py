"""`iss demo`: the main job on the embedded default, no servers needed."""
from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from iss_plugin.domain.errors import IssError

from .main import cli
from .output import emit, stderr, stdout, wants_json


@cli.command()
@click.option("--keep", type=click.Path(file_okay=False, path_type=Path), help="build in this directory and keep it")
@click.option("--packages", default=20, show_default=True, help="packages per repository")
@click.option("--output", type=click.Choice(["table", "json"]), default=None)
@click.pass_context
def demo(ctx, keep, packages, output):
    """Source and destination on one machine: publish, export, import, incremental, refusal."""
    from iss_plugin.demo import run_demo

    quiet = wants_json(ctx)
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
    try:
        steps = run_demo(keep, packages, say=(lambda s: None) if quiet else (lambda s: stderr.print(s, highlight=False)))
    except IssError as e:
        stderr.print(f"demo failed: {e}")
        ctx.exit(e.exit_code)
    rows = [{"step": s.step, "result": s.result, "detail": s.detail, "seconds": round(s.seconds, 3)} for s in steps]
    if quiet:
        emit(ctx, rows)
        return
    table = Table("step", "result", "detail", "seconds", title="iss demo: source -> destination (embedded)")
    for r in rows:
        table.add_row(r["step"], r["result"], r["detail"], f"{r['seconds']:.3f}")
    stdout.print(table)
