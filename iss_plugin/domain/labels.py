"""Katello-style labels: what names a thing on every server."""

from __future__ import annotations

import re

from .errors import UsageError

_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def make_label(name: str) -> str:
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", name.strip()).strip("_.-")
    return check_label(label or "_", what=f"label made from '{name}'")


def check_label(label: str, what: str = "label") -> str:
    if not _LABEL.fullmatch(label) or ".." in label:  # fullmatch: "$" would let "x\n" through
        raise UsageError(
            f"{what} '{label}' is not valid: use letters, digits, '_', '-' or '.', "
            "starting with a letter or digit, at most 128 characters"
        )
    return label


_SERVER_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def check_server_id(server_id: str, what: str = "server id") -> str:
    """A server id names a server in routing keys and queue names: letters, digits, '-' and '_'
    only (no '.', which separates routing-key words, no spaces, no '*' or '#'), at most 128."""
    if not isinstance(server_id, str) or not _SERVER_ID.fullmatch(server_id):
        raise UsageError(
            f"{what} '{server_id}' is not valid: use only letters, digits, '-' and '_' "
            "(no '.', spaces, '*' or '#'), 1 to 128 characters"
        )
    return server_id


def server_id_from_hostname(hostname: str, suffix: str) -> str:
    """`<first hostname label>-<suffix>`, the label reduced to the characters a server id allows."""
    first = hostname.split(".", 1)[0]
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", first).strip("-_") or "iss"
    return check_server_id(f"{base[: 128 - len(suffix) - 1]}-{suffix}")
