"""Every `iss` command has a permission on purpose: mapped in cli/identity.COMMAND_PERMISSIONS,
admin-only by design, or open by design. A new command fails here until someone decides."""

from __future__ import annotations

import click

from iss_plugin.cli.identity import COMMAND_PERMISSIONS, DEFAULT_PERMISSION
from iss_plugin.cli.main import build_cli
from iss_plugin.domain import policy

ADMIN_ONLY = {
    "user create",
    "user list",
    "user grant",
    "user revoke-role",
    "user update",
    "user delete",
    "role create",
    "role list",
    "role add-permission",
    "role update",
    "store gc",
    "bundle gc",
    "relay",
    "worker",
    "run",
    "watch",
    "serve",  # like run: a server process (its pages and endpoints check each caller themselves)
}
OPEN = {
    "init",
    "db upgrade",
    "keys show",
    "demo",
}  # command(..., authenticated=False), or (demo) its own servers: no identity needed


def leaves(group: click.Group, prefix: str = "") -> set[str]:
    out = set()
    for name, cmd in group.commands.items():
        path = f"{prefix}{name}"
        out |= leaves(cmd, f"{path} ") if isinstance(cmd, click.Group) else {path}
    return out


def test_every_command_has_a_decided_permission():
    commands = leaves(build_cli())
    undecided = commands - set(COMMAND_PERMISSIONS) - ADMIN_ONLY - OPEN
    assert not undecided, f"map these in cli/identity.COMMAND_PERMISSIONS (or list them here): {sorted(undecided)}"
    assert DEFAULT_PERMISSION == (policy.ADMIN, "server")
    assert {p for p, _ in COMMAND_PERMISSIONS.values()} <= set(policy.PERMISSIONS)
    assert not (ADMIN_ONLY | OPEN) & set(COMMAND_PERMISSIONS)
