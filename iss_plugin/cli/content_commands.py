"""Destination-side content management: Red Hat repository sets, sync URL overrides, products CSV.

`repository-set` is a group of its own (COMMANDS); the other commands join the `repository`,
`product` and `organization` groups of catalog_commands."""

from __future__ import annotations

from pathlib import Path

import click

from iss_plugin.domain.errors import UsageError

from .catalog_commands import organization, product, repository
from .output import emit
from .state import State, command

ORG = click.option("--organization", required=True, help="organization label")
REPO = click.option(
    "--repository", "repository", required=True, metavar="PRODUCT/REPO", help="product and repository labels"
)
URL = click.option("--url", help="file://, http:// or https:// (no spaces)")
RESET = click.option("--reset", is_flag=True, help="remove the override")


def _url_or_reset(url: str | None, reset: bool) -> str | None:
    if (url is None) == (not reset):
        raise UsageError("give either --url URL or --reset (back to the upstream URL), not both or neither")
    return url


# --- repository sets ----------------------------------------------------------------------------


@click.group("repository-set")
def repository_set() -> None:
    """Red Hat repositories that arrived in imported bundles and the entitlement manifest covers."""


@command(repository_set, "list")
@ORG
def repository_set_list(ctx: click.Context, state: State, output: str | None, organization: str) -> None:
    from iss_plugin.services import repository_sets

    emit(ctx, repository_sets.list_repository_sets(state.app.uow(), organization))


def _set_command(name: str, enable: bool) -> click.Command:
    @ORG
    @click.option("--product", required=True, help="Red Hat product label")
    @click.option("--repository", required=True, help="repository label")
    def run(
        ctx: click.Context, state: State, output: str | None, organization: str, product: str, repository: str
    ) -> None:
        from iss_plugin.services import repository_sets

        action = repository_sets.enable if enable else repository_sets.disable
        emit(ctx, action(state.app.uow(), organization, product, repository, state.app.settings.actor))

    run.__doc__ = (
        "Enable an imported Red Hat repository (its content comes from the imported versions)."
        if enable
        else "Disable a Red Hat repository; its imported content is kept so it can be enabled again."
    )
    return command(repository_set, name)(run)


_set_command("enable", True)
_set_command("disable", False)


# --- sync URL overrides -------------------------------------------------------------------------


@command(repository, "set-url")
@ORG
@REPO
@URL
@RESET
def repository_set_url(
    ctx: click.Context,
    state: State,
    output: str | None,
    organization: str,
    repository: str,
    url: str | None,
    reset: bool,
) -> None:
    """Synchronize this repository from URL from now on (--reset: back to its product, CDN or upstream)."""
    from iss_plugin.services import sync_urls

    emit(
        ctx,
        sync_urls.set_repository_url(
            state.app.uow(), organization, repository, _url_or_reset(url, reset), state.app.settings.actor
        ),
    )


@command(repository, "urls")
@ORG
@click.option("--repository", metavar="PRODUCT/REPO", help="one repository (default: all)")
def repository_urls(
    ctx: click.Context, state: State, output: str | None, organization: str, repository: str | None
) -> None:
    """Upstream URL, overrides and the effective URL each repository synchronizes from."""
    from iss_plugin.services import sync_urls

    emit(ctx, sync_urls.repository_urls(state.app.uow(), organization, repository))


@command(product, "set-url")
@ORG
@click.option("--product", required=True, help="product label")
@URL
@RESET
def product_set_url(
    ctx: click.Context, state: State, output: str | None, organization: str, product: str, url: str | None, reset: bool
) -> None:
    """Every repository of the product synchronizes from URL + its label + '/' (--reset: back to upstream)."""
    from iss_plugin.services import sync_urls

    emit(
        ctx,
        sync_urls.set_product_url(
            state.app.uow(), organization, product, _url_or_reset(url, reset), state.app.settings.actor
        ),
    )


@command(organization, "set-cdn")
@ORG
@URL
@RESET
def organization_set_cdn(
    ctx: click.Context, state: State, output: str | None, organization: str, url: str | None, reset: bool
) -> None:
    """Point the organization's Red Hat content at URL (an export location): each Red Hat repository
    synchronizes from URL + repos/<product>/<repository>/ (--reset: back to upstream)."""
    from iss_plugin.services import sync_urls

    emit(ctx, sync_urls.set_cdn(state.app.uow(), organization, _url_or_reset(url, reset), state.app.settings.actor))


# --- products CSV -------------------------------------------------------------------------------

CSV = click.option("--csv", "csv_file", required=True, type=click.Path(path_type=Path), help="the CSV file")


@command(product, "export")
@ORG
@CSV
def product_export(ctx: click.Context, state: State, output: str | None, organization: str, csv_file: Path) -> None:
    """Write the organization's products and repositories as CSV (hammer csv products columns)."""
    from iss_plugin.services import products_csv

    emit(ctx, products_csv.export_products_csv(state.app.uow(), organization, csv_file))


@command(product, "import")
@ORG
@CSV
@click.option("--url-rewrite", "rewrites", multiple=True, metavar="FROM=TO", help="replace a URL prefix")
def product_import(
    ctx: click.Context, state: State, output: str | None, organization: str, csv_file: Path, rewrites: tuple[str, ...]
) -> None:
    """Create or update products and repositories from CSV; every row is checked before anything is written."""
    from iss_plugin.domain.content_rules import parse_url_rewrite
    from iss_plugin.services import products_csv

    rules = [parse_url_rewrite(r) for r in rewrites]
    emit(
        ctx, products_csv.import_products_csv(state.app.uow(), organization, csv_file, rules, state.app.settings.actor)
    )


COMMANDS: tuple[click.Command, ...] = (repository_set,)
