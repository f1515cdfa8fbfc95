"""HTTP byte ranges (RFC 9110 §14) over an archive made of one or more files (chunks joined)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

BLOCK = 1 << 20
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


class Unsatisfiable(Exception):
    """416: the range lies outside the archive."""


@dataclass(frozen=True)
class Segment:
    path: Path
    size: int


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte, inclusive; None for no usable range (serve everything: a multi-range or
    malformed header is ignored, as RFC 9110 allows); Unsatisfiable when it lies outside."""
    if not header:
        return None
    m = _RANGE.match(header)
    if not m or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):  # suffix: the last N bytes
        n = int(m.group(2))
        if n == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - n), size - 1
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) else size - 1
    if first >= size or last < first:
        raise Unsatisfiable
    return first, min(last, size - 1)


def read_range(segments: Sequence[Segment], first: int, last: int) -> Iterator[bytes]:
    """The bytes first..last (inclusive) of the segments joined, in blocks."""
    offset = 0
    for seg in segments:
        start, end = max(first, offset), min(last + 1, offset + seg.size)
        if start < end:
            with open(seg.path, "rb") as fh:
                fh.seek(start - offset)
                left = end - start
                while left > 0:
                    block = fh.read(min(BLOCK, left))
                    if not block:
                        raise OSError(f"{seg.path} is shorter than {seg.size} bytes")
                    left -= len(block)
                    yield block
        offset += seg.size
