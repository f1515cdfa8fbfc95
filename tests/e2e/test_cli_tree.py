"""The `iss` tree: built in one place from the command modules and the entry points, with --version."""

from __future__ import annotations

from importlib.metadata import version

from click.testing import CliRunner

from iss_plugin.cli import bus_commands, catalog_commands, server_commands, transfer_commands
from iss_plugin.cli.main import build_cli


def test_version_is_the_installed_distributions():
    result = CliRunner().invoke(build_cli(), ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"iss {version('iss')}\n"


def test_the_tree_holds_every_command_module_and_the_entry_points_commands():
    tree = build_cli().commands
    for module in (server_commands, catalog_commands, transfer_commands, bus_commands):
        for command in module.COMMANDS:
            assert tree[command.name] is command
    assert {"worker", "run", "demo", "watch"} <= tree.keys()  # consumers/ and producers/, through entry points


def test_each_build_is_a_fresh_tree():
    assert build_cli() is not build_cli()


def test_an_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(build_cli(), ["version"])
    assert result.exit_code == 2
    assert "No such command 'version'" in result.output
