"""The embedded local content backend (DESIGN.md section 5, "local"); see backend.py."""

from iss_plugin.adapters.backends.local.backend import LocalBackend
from iss_plugin.adapters.backends.local.sync import SyncReport

__all__ = ["LocalBackend", "SyncReport"]
