"""organization, product, repository, content-view, trust, manifest."""

from __future__ import annotations

from pathlib import Path

import click

from .identity import VIEW_PRODUCTS, only_visible
from .output import emit
from .state import State, command, source_id

ORG = click.option("--organization", required=True, help="organization label")
REPO = click.option(
    "--repository", "repository", required=True, metavar="PRODUCT/REPO", help="product and repository labels"
)


@click.group()
def organization() -> None:
    """Organizations."""


@command(organization, "create")
@click.option("--name", required=True)
@click.option("--label", help="default: made from the name")
def organization_create(ctx: click.Context, state: State, output: str | None, name: str, label: str | None) -> None:
    from iss_plugin.services import catalog

    emit(ctx, catalog.create_organization(state.app.uow(), name, label, state.app.settings.actor))


@command(organization, "list")
def organization_list(ctx: click.Context, state: State, output: str | None) -> None:
    from iss_plugin.services import catalog

    emit(ctx, only_visible(state, VIEW_PRODUCTS, catalog.list_organizations(state.app.uow())))


@click.group()
def product() -> None:
    """Products (custom, or Red Hat with the content id they come from)."""


@command(product, "create")
@ORG
@click.option("--name", required=True)
@click.option("--label")
@click.option("--redhat", is_flag=True, help="a Red Hat product (needs --content-id)")
@click.option("--content-id", help="the Red Hat content id / cp_id")
def product_create(
    ctx: click.Context,
    state: State,
    output: str | None,
    organization: str,
    name: str,
    label: str | None,
    redhat: bool,
    content_id: str | None,
) -> None:
    from iss_plugin.services import catalog

    emit(
        ctx,
        catalog.create_product(
            state.app.uow(), organization, name, label, redhat, content_id, state.app.settings.actor
        ),
    )


@command(product, "list")
@ORG
def product_list(ctx: click.Context, state: State, output: str | None, organization: str) -> None:
    from iss_plugin.services import catalog

    rows = catalog.list_repositories(state.app.uow(), organization)
    from iss_plugin.adapters.db import catalog as find

    with state.app.uow() as uow:
        org = find.organization(uow.session, organization)
        products = [
            {
                "label": p.label,
                "name": p.name,
                "redhat": p.redhat,
                "content_id": p.content_id,
                "gpg_key": p.gpg_key_fingerprints,
                "repositories": [r["label"] for r in rows if r["product"] == p.label],
            }
            for p in org.products
        ]
    emit(ctx, products)


@click.group()
def repository() -> None:
    """Yum repositories."""


@command(repository, "create")
@ORG
@click.option("--product", required=True, help="product label")
@click.option("--name", required=True)
@click.option("--label")
@click.option("--url", help="upstream yum repository (file://, http://, https://)")
@click.option("--content-type", default="yum", show_default=True)
def repository_create(
    ctx: click.Context,
    state: State,
    output: str | None,
    organization: str,
    product: str,
    name: str,
    label: str | None,
    url: str | None,
    content_type: str,
) -> None:
    from iss_plugin.services import catalog

    emit(
        ctx,
        catalog.create_repository(
            state.app.uow(), organization, product, name, label, url, content_type, state.app.settings.actor
        ),
    )


@command(repository, "list")
@ORG
def repository_list(ctx: click.Context, state: State, output: str | None, organization: str) -> None:
    from iss_plugin.services import catalog

    emit(ctx, catalog.list_repositories(state.app.uow(), organization))


@command(repository, "info")
@ORG
@REPO
def repository_info(ctx: click.Context, state: State, output: str | None, organization: str, repository: str) -> None:
    from iss_plugin.services import catalog

    emit(ctx, catalog.repository_info(state.app.uow(), organization, repository))


@command(repository, "upload")
@ORG
@REPO
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def repository_upload(
    ctx: click.Context, state: State, output: str | None, organization: str, repository: str, files: tuple[Path, ...]
) -> None:
    """Upload RPM files, and updateinfo.xml, comps.xml or modules.yaml files, into a new repository version."""
    from iss_plugin.services import catalog

    emit(
        ctx,
        catalog.upload_packages(
            state.app.uow(), organization, repository, list(files), state.app.settings.actor, source_id(state)
        ),
    )


@command(repository, "remove-package")
@ORG
@REPO
@click.argument("nevras", nargs=-1, required=True)
def repository_remove(
    ctx: click.Context, state: State, output: str | None, organization: str, repository: str, nevras: tuple[str, ...]
) -> None:
    """Remove packages (by name-version-release.arch) into a new repository version."""
    from iss_plugin.services import catalog

    emit(
        ctx,
        catalog.remove_packages(
            state.app.uow(), organization, repository, list(nevras), state.app.settings.actor, source_id(state)
        ),
    )


@command(repository, "synchronize")
@ORG
@REPO
@click.option("--url", help="sync from this URL once (temporary override of the upstream URL)")
def repository_synchronize(
    ctx: click.Context, state: State, output: str | None, organization: str, repository: str, url: str | None
) -> None:
    """Mirror the upstream yum repository, fetching only packages not yet held."""
    from iss_plugin.services import catalog

    emit(
        ctx,
        catalog.synchronize(state.app.uow(), organization, repository, url, state.app.settings.actor, source_id(state)),
    )


@click.group("content-view")
def content_view() -> None:
    """Content views: frozen sets of repository versions."""


@command(content_view, "create")
@ORG
@click.option("--name", required=True)
@click.option("--label")
@click.option("--blessed", is_flag=True, help="blessed views propagate to subscribed destinations by themselves")
@click.option("--repository", "repositories", multiple=True, metavar="PRODUCT/REPO")
def content_view_create(
    ctx: click.Context,
    state: State,
    output: str | None,
    organization: str,
    name: str,
    label: str | None,
    blessed: bool,
    repositories: tuple[str, ...],
) -> None:
    from iss_plugin.services import content_views

    emit(
        ctx,
        content_views.create_content_view(
            state.app.uow(), organization, name, label, blessed, repositories, state.app.settings.actor
        ),
    )


@command(content_view, "list")
@ORG
def content_view_list(ctx: click.Context, state: State, output: str | None, organization: str) -> None:
    from iss_plugin.services import content_views

    emit(ctx, content_views.list_content_views(state.app.uow(), organization))


@command(content_view, "bless")
@ORG
@click.option("--content-view", required=True)
@click.option("--unbless", is_flag=True)
def content_view_bless(
    ctx: click.Context, state: State, output: str | None, organization: str, content_view: str, unbless: bool
) -> None:
    from iss_plugin.services import content_views

    emit(
        ctx,
        content_views.set_blessed(state.app.uow(), organization, content_view, not unbless, state.app.settings.actor),
    )


@command(content_view, "publish")
@ORG
@click.option("--content-view", required=True, help="content view label")
@click.option("--description")
def content_view_publish(
    ctx: click.Context, state: State, output: str | None, organization: str, content_view: str, description: str | None
) -> None:
    """Publish a new version pinning the latest version of each repository."""
    from iss_plugin.services import content_views

    emit(
        ctx,
        content_views.publish(
            state.app.uow(), organization, content_view, description, state.app.settings.actor, source_id(state)
        ),
    )


@content_view.group("version")
def content_view_version() -> None:
    """Content view versions."""


@command(content_view_version, "list")
@ORG
@click.option("--content-view", required=True)
def content_view_version_list(
    ctx: click.Context, state: State, output: str | None, organization: str, content_view: str
) -> None:
    from iss_plugin.services import content_views

    rows = content_views.list_versions(state.app.uow(), organization, content_view)
    if ctx.find_root().params.get("output") != "json" and output != "json":
        table = [
            {
                "version": r["version"],
                "created": r["created"],
                "imported_from": r["imported_from"],
                "repositories": ", ".join(
                    f"{x['product']}/{x['repository']} ({x['package_count']})" for x in r["repositories"]
                ),
            }
            for r in rows
        ]
        emit(ctx, table)
        return
    emit(ctx, rows)


@click.group()
def trust() -> None:
    """Sources whose bundles this server accepts."""


@command(trust, "add")
@click.option("--name", required=True, help="a name for the source server")
@click.option(
    "--server-id",
    help="the source's iss server id (`iss content-import request` addresses it); default: kept, or --name",
)
@click.option(
    "--public-key",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="the source's public key (PEM, from `iss keys show` there)",
)
@click.option("--organization", "organizations", multiple=True, help="organization(s) it may feed, each into itself")
@click.option(
    "--map", "maps", multiple=True, metavar="SRC=DST", help="its organization SRC feeds organization DST here"
)
def trust_add(
    ctx: click.Context,
    state: State,
    output: str | None,
    name: str,
    server_id: str | None,
    public_key: Path,
    organizations: tuple[str, ...],
    maps: tuple[str, ...],
) -> None:
    from iss_plugin.adapters.bundles.signing import read_public_key_file
    from iss_plugin.domain.trust import parse_maps
    from iss_plugin.services import catalog

    mapping = parse_maps(organizations, maps)
    emit(
        ctx,
        catalog.add_trusted_source(
            state.app.uow(),
            name,
            read_public_key_file(public_key),
            mapping,
            state.app.settings.actor,
            server_id=server_id,
        ),
    )


@command(trust, "list")
def trust_list(ctx: click.Context, state: State, output: str | None) -> None:
    from iss_plugin.services import catalog

    emit(ctx, catalog.list_trusted_sources(state.app.uow()))


@click.group()
def manifest() -> None:
    """Entitlement manifests (the Red Hat products an organization may hold)."""


@command(manifest, "import")
@click.argument("file", type=click.Path(path_type=Path))
def manifest_import(ctx: click.Context, state: State, output: str | None, file: Path) -> None:
    from iss_plugin.services import catalog

    emit(ctx, catalog.import_entitlement_manifest(state.app.uow(), file, state.app.settings.actor))


@click.group()
def store() -> None:
    """The content store (local files, or Pulp's content)."""


@command(store, "gc")
@click.option("--min-age", default=3600.0, show_default=True, help="only files older than this many seconds")
@click.option(
    "--event-retention-days",
    type=click.IntRange(min=0),
    default=None,
    help="delete sent outbox rows and processed-event markers older than this (default: the "
    "event_retention_days setting; 0 keeps them)",
)
def store_gc(
    ctx: click.Context, state: State, output: str | None, min_age: float, event_retention_days: int | None
) -> None:
    """Remove store files no package references (left by a crashed or rolled-back import); on the
    pulp backend, Pulp's orphan cleanup (content no repository version holds, server-wide). Then
    delete sent outbox rows and processed-event markers older than the event retention."""
    from iss_plugin.services.event_retention import prune_events
    from iss_plugin.services.maintenance import collect_garbage

    days = state.app.settings.event_retention_days if event_retention_days is None else event_retention_days
    removed = collect_garbage(state.app, min_age)
    pruned = prune_events(state.app.uow, days)
    emit(
        ctx,
        {
            "removed": removed,
            "event_retention_days": days,
            "outbox_events_pruned": pruned.outbox,
            "processed_events_pruned": pruned.processed,
            "transactions": pruned.transactions,
            "longest_transaction_seconds": round(pruned.longest_transaction_seconds, 3),
        },
    )


COMMANDS: tuple[click.Command, ...] = (organization, product, repository, content_view, trust, manifest, store)
