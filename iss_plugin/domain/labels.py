"""Katello-style labels: what names a thing on every server."""
from __future__ import annotations

import re

from .errors import UsageError

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def make_label(name: str) -> str:
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", name.strip()).strip("_.-")
    return check_label(label or "_", what=f"label made from '{name}'")


def check_label(label: str, what: str = "label") -> str:
    if not _LABEL.match(label) or ".." in label:
        raise UsageError(
            f"{what} '{label}' is not valid: use letters, digits, '_', '-' or '.', "
            "starting with a letter or digit, at most 128 characters"
        )
    return label
