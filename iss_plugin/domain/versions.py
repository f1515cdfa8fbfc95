"""Content view version numbers (major.minor)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import UsageError

_VERSION = re.compile(r"^(\d+)\.(\d+)$")


@dataclass(frozen=True, order=True, slots=True)
class VersionNumber:
    major: int
    minor: int = 0

    @classmethod
    def parse(cls, text: str) -> VersionNumber:
        m = _VERSION.match(str(text).strip())
        if not m:
            raise UsageError(f"'{text}' is not a content view version: use MAJOR.MINOR, for example 2.0")
        return cls(int(m.group(1)), int(m.group(2)))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"
