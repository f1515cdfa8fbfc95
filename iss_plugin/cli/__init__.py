"""The `iss` command: parse, call a service, print. Verbs follow hammer. The tree is built in main.py."""

from __future__ import annotations

from .main import main

__all__ = ["main"]
