"""`iss product set-gpg-key` and `iss product info`: the GPG key a product's packages are signed with.
These join the `product` group of catalog_commands."""

from __future__ import annotations

from pathlib import Path

import click

from iss_plugin.domain.errors import UsageError

from .catalog_commands import product
from .output import emit
from .state import State, command

ORG = click.option("--organization", required=True, help="organization label")
PRODUCT = click.option("--product", required=True, help="product label")


@command(product, "set-gpg-key")
@ORG
@PRODUCT
@click.option("--key-file", type=click.Path(path_type=Path), help="ASCII-armored OpenPGP public key (.asc)")
@click.option("--remove", is_flag=True, help="remove the product's key")
def product_set_gpg_key(
    ctx: click.Context,
    state: State,
    output: str | None,
    organization: str,
    product: str,
    key_file: Path | None,
    remove: bool,
) -> None:
    """The public key the product's packages are signed with: imports refuse packages it did not sign."""
    from iss_plugin.services import product_keys

    if (key_file is None) == (not remove):
        raise UsageError("give either --key-file KEY.asc or --remove, not both or neither")
    emit(
        ctx,
        product_keys.set_product_gpg_key(state.app.uow(), organization, product, key_file, state.app.settings.actor),
    )


@command(product, "info")
@ORG
@PRODUCT
def product_info(ctx: click.Context, state: State, output: str | None, organization: str, product: str) -> None:
    """One product: its labels, GPG key fingerprints and repositories."""
    from iss_plugin.services import product_keys

    emit(ctx, product_keys.product_info(state.app.uow(), organization, product))


COMMANDS: tuple[click.Command, ...] = ()
