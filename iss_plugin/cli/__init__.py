"""The `iss` command: parse, call a service, print. Verbs follow hammer."""

from __future__ import annotations

from .main import main

__all__ = ["main"]
