"""Printing results as rich tables or JSON, and errors with their exit codes."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from iss_plugin.domain.errors import EXIT_RUNTIME, IssError

F = TypeVar("F", bound=Callable[..., Any])

stdout = Console()
stderr = Console(stderr=True)


def _default(o: object) -> str:
    if isinstance(o, datetime):
        return o.isoformat()
    return str(o)


def wants_json(ctx: click.Context) -> bool:
    root = ctx.find_root()
    return (ctx.params.get("output") or root.params.get("output")) == "json"


def emit(ctx: click.Context, result: object, *, columns: list[str] | None = None, title: str | None = None) -> None:
    if wants_json(ctx):
        click.echo(json.dumps(result, indent=2, default=_default, sort_keys=True))
        return
    if isinstance(result, list):
        if not result:
            stdout.print("(none)")
            return
        cols = columns or list(result[0].keys())
        table = Table(*cols, title=title)
        for row in result:
            table.add_row(*(_cell(row.get(c)) for c in cols))
        stdout.print(table)
    elif isinstance(result, dict):
        table = Table("field", "value", title=title, show_header=False)
        for k, v in result.items():
            table.add_row(k, _cell(v))
        stdout.print(table)
    else:
        stdout.print(result)


def _cell(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple)):
        return (
            ", ".join(_cell(x) for x in v)
            if all(not isinstance(x, dict) for x in v)
            else json.dumps(v, default=_default)
        )
    if isinstance(v, dict):
        return json.dumps(v, default=_default)
    return str(v)


def output_option(f: F) -> F:
    return click.option(
        "--output", type=click.Choice(["table", "json"]), default=None, help="table (default) or json for scripts"
    )(f)


def handle_errors(f: Callable[..., Any]) -> Callable[..., Any]:
    """Turn IssError into a clear message (or JSON on --output json) and its exit code."""

    @wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        try:
            return f(*args, **kwargs)
        except IssError as e:
            report_error(ctx, e.as_dict(), str(e), e.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as e:  # an unexpected failure: say what, keep the traceback for ISS_DEBUG=1
            if os.environ.get("ISS_DEBUG"):
                raise
            report_error(
                ctx,
                {"error": type(e).__name__, "message": str(e), "reason": "internal"},
                f"{type(e).__name__}: {e} (run with ISS_DEBUG=1 for the traceback)",
                EXIT_RUNTIME,
            )

    return wrapper


def report_error(ctx: click.Context, payload: dict[str, Any], text: str, code: int) -> None:
    if wants_json(ctx):
        click.echo(json.dumps(payload, indent=2, default=_default, sort_keys=True))
    else:
        stderr.print(Text.assemble(("error: ", "bold red"), text), highlight=False, soft_wrap=True)
    ctx.exit(code)


@contextmanager
def progress_bar(ctx: click.Context) -> Iterator[Callable[[str, int, int], None]]:
    """A progress callback (step, done, total) drawn on stderr when it is a terminal."""
    disabled = wants_json(ctx) or not sys.stderr.isatty()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
        disable=disabled,
    ) as progress:
        tasks: dict[str, TaskID] = {}

        def update(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = progress.add_task(step, total=total)
            progress.update(tasks[step], completed=done, total=total)

        yield update
