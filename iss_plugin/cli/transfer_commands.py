"""content-export and content-import, as in hammer."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import click

from iss_plugin.domain import events as ev
from iss_plugin.domain.errors import IssError, UsageError
from iss_plugin.domain.versions import VersionNumber

from .output import emit, progress_bar, report_error
from .state import State, command


@click.group("content-export")
def content_export() -> None:
    """Write bundles: complete, or incremental from a base."""


@content_export.group("complete")
def export_complete() -> None:
    """Everything in the version."""


@content_export.group("incremental")
def export_incremental() -> None:
    """Only what the base lacks (default base: the last export of it to that destination)."""


def _export_options(f: Callable[..., None], *, incremental: bool, scope: str) -> Callable[..., None]:
    opts = [
        click.option("--organization", required=True),
        click.option("--destination", help="destination server name (history and default base are per destination)"),
        click.option("--format", "fmt", type=click.Choice(["dir", "tgz", "iso"]), default="dir", show_default=True),
        click.option(
            "--chunk-size-mb", type=float, help="split the archive into chunks of this many MiB (fractions allowed)"
        ),
        click.option(
            "--path", type=click.Path(file_okay=False, path_type=Path), help="output directory (default: export dir)"
        ),
    ]
    if scope == "version":
        opts += [click.option("--content-view", required=True), click.option("--version", help="X.Y (default: latest)")]
    else:
        opts += [click.option("--product", required=True), click.option("--repository", required=True)]
    if incremental:
        opts += [
            click.option("--from-version", help="base: X.Y for a content view, N for a repository version"),
            click.option("--since", help="base: the newest version created before this ISO date/time"),
        ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _parse_since(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--since '{text}' is not an ISO date or date-time (for example 2026-11-01T12:00)") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _run_export(
    ctx: click.Context,
    state: State,
    *,
    scope: str,
    incremental: bool,
    organization: str,
    destination: str | None,
    fmt: Literal["dir", "tgz", "iso"],
    chunk_size_mb: float | None,
    path: Path | None,
    content_view: str | None = None,
    version: str | None = None,
    product: str | None = None,
    repository: str | None = None,
    from_version: str | None = None,
    since: str | None = None,
) -> None:
    from iss_plugin.services import exporting

    if from_version and since:
        raise UsageError("give --from-version or --since, not both")
    if chunk_size_mb is not None and not (math.isfinite(chunk_size_mb) and chunk_size_mb > 0):
        raise UsageError(f"--chunk-size-mb {chunk_size_mb}: give a positive, finite number of MiB (for example 4096)")
    request = exporting.ExportRequest(
        organization=organization,
        scope="content_view_version" if scope == "version" else "repository",
        incremental=incremental,
        content_view=content_view,
        version=VersionNumber.parse(version) if version else None,
        product=product,
        repository=repository,
        from_version=from_version,
        since=_parse_since(since),
        destination=destination,
        fmt=fmt,
        chunk_size=max(1, int(chunk_size_mb * 1024 * 1024)) if chunk_size_mb is not None else None,
        path=path,
    )
    app = state.app
    try:
        with progress_bar(ctx) as progress:
            result = exporting.export_bundle(
                app.uow(),
                request,
                out_dir=app.settings.exports_path,
                signer=app.signer,
                server_id=app.server_id,
                actor=app.settings.actor,
                progress=progress,
                staging_root=app.settings.data_dir / "staging",
            )
    except IssError as e:
        if not isinstance(e, UsageError) and e.reason != "not_found":
            exporting.record_failed_export(app.uow(), request, e, app.settings.actor)
        raise
    emit(ctx, result)


def _export_command(group: click.Group, scope: str, incremental: bool) -> None:
    def body(ctx: click.Context, state: State, output: str | None, **kw: Any) -> None:
        _run_export(ctx, state, scope=scope, incremental=incremental, **kw)

    body.__doc__ = (
        f"{'Incremental' if incremental else 'Complete'} export of a "
        f"{'content view version' if scope == 'version' else 'Library repository'}."
    )
    body.__name__ = f"export_{'incremental' if incremental else 'complete'}_{scope}"
    command(group, scope)(_export_options(body, incremental=incremental, scope=scope))


for _group, _incr in ((export_complete, False), (export_incremental, True)):
    for _scope in ("version", "repository"):
        _export_command(_group, _scope, _incr)


@click.group("content-import")
def content_import() -> None:
    """Verify and import bundles (directory, .tar.gz, .iso, or the first chunk)."""


def report_import_failure(ctx: click.Context, e: IssError) -> None:
    """An import that failed, with the reason the answer to a source would give for it (a failure
    of this server's own: destination_error, the error's class still named); exits."""
    report_error(ctx, e.as_dict() | {"reason": ev.import_failure_reason(e)}, str(e), e.exit_code)


def _import_command(scope: str) -> None:
    @click.option("--organization", required=True, help="the organization to import into")
    @click.option(
        "--path",
        required=True,
        type=click.Path(path_type=Path),
        help="bundle directory, .tar.gz, .iso, or its first chunk (.000)",
    )
    @click.option("--dry-run", is_flag=True, help="report every problem and what would change; change nothing")
    def body(
        ctx: click.Context, state: State, output: str | None, organization: str, path: Path, dry_run: bool
    ) -> None:
        from iss_plugin.services import importing

        app = state.app
        if not path.exists():
            raise UsageError(f"{path} does not exist")
        request = importing.ImportRequest(
            organization=organization,
            path=path,
            scope="content_view_version" if scope == "version" else "repository",
            dry_run=dry_run,
        )
        try:
            result = importing.import_bundle(
                app.uow(), request, work_dir=app.settings.imports_path, actor=app.settings.actor
            )
        except IssError as e:
            if not dry_run and e.reason not in ("not_found", "usage"):
                importing.record_rejection(app.uow(), request, e, app.settings.actor)
            report_import_failure(ctx, e)
        emit(ctx, result)

    body.__doc__ = f"Import a {'content view version' if scope == 'version' else 'repository'} bundle."
    body.__name__ = f"import_{scope}"
    command(content_import, scope)(body)


for _scope in ("version", "repository"):
    _import_command(_scope)


@click.option("--from", "source", required=True, help="the source's iss serve, e.g. https://source:8443")
@click.option("--organization", required=True, help="the organization (its label on the source)")
@click.option("--content-view", required=True, help="the content view's label")
@click.option("--version", help="MAJOR.MINOR (default: the source's latest)")
def _sync(
    ctx: click.Context,
    state: State,
    output: str | None,
    source: str,
    organization: str,
    content_view: str,
    version: str | None,
) -> None:
    """Pull what this server lacks of a content view straight from the source's stream (no bundle on disk)."""
    from iss_plugin.adapters.bundles.pull import StreamClient
    from iss_plugin.services import pulling

    app = state.app
    request = pulling.PullRequest(organization, content_view, VersionNumber.parse(version) if version else None)
    try:
        with StreamClient(source, app.signer, app.server_id) as client:
            result = pulling.pull_content_view(
                app.uow(),
                request,
                open_stream=client.open,
                work_dir=app.settings.imports_path,
                display=f"the stream from {source}",
                actor=app.settings.actor,
            )
    except IssError as e:
        report_import_failure(ctx, e)
    emit(ctx, result)


command(content_import, "sync")(_sync)


@click.option("--organization", required=True, help="the organization (its label on the source)")
@click.option("--content-view", help="the content view's label")
@click.option("--repository", metavar="PRODUCT/REPO", help="a repository (labels), instead of a content view")
@click.option("--version", help="MAJOR.MINOR of the content view (default: the source's latest)")
@click.option("--full", is_flag=True, help="ask for all of it, whatever is held here")
@click.option(
    "--source",
    metavar="NAME",
    help="the trusted source to ask (`iss trust list`); default: the one that maps the organization",
)
def _request(
    ctx: click.Context,
    state: State,
    output: str | None,
    organization: str,
    content_view: str | None,
    repository: str | None,
    version: str | None,
    full: bool,
    source: str | None,
) -> None:
    """Ask a trusted source over the bus for what this server lacks of a content view or a repository;
    its import worker pulls it."""
    from iss_plugin.services import pull_requests

    app = state.app
    result = pull_requests.request_export(
        app.uow(),
        organization=organization,
        content_view=content_view,
        repository=repository,
        version=VersionNumber.parse(version) if version else None,
        full=full,
        source=source,
        server_id=app.server_id,
        requested_by=app.settings.actor,
    )
    emit(ctx, result)


command(content_import, "request")(_request)


COMMANDS: tuple[click.Command, ...] = (content_export, content_import)
