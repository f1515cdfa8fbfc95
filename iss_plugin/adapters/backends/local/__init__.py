"""The embedded local content backend (docs/architecture.md §7, "local"); see backend.py."""

from iss_plugin.adapters.backends.local.backend import LocalBackend

__all__ = ["LocalBackend"]
