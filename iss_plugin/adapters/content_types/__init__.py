"""Content types are plugins (docs/architecture.md §7): each registers a class under the entry point group
`iss_plugin.content_types`. A content type knows its file format; the store knows where files
live and which versions hold them. The core names no type except the default, "yum".

What a content type gives the local store:

- `read_unit(path)`: read one content file (for yum: an RPM header) into a `Unit`: the package
  values plus the metadata chunks the store keeps so that a version's metadata is generated
  without reading the files again.
- `compress_block(chunks)`: a run of units' chunks as one compressed member per metadata file.
  Members concatenate, so the store caches blocks and a new version costs only its new blocks.
- `write_index(dest, count, blocks, ...)`: the index of a tree (for yum: repodata/) from blocks.
- `read_remote_index(url, fetch, workdir)`: what a remote repository holds (for `sync`).
- `is_unit_path(relpath)`: which files of a tree are content (for `import_tree`).
- optionally `sniff(path)`: why a file is plainly not of this type (cheap), or None; uploads are
  refused with it before anything is stored (see `file_problems`).
- optionally the `MetadataUnits` methods: metadata beyond content files (for yum: advisories,
  comps, modules) read from an uploaded file, a tree or a remote, and written into a tree's index.
  A type without them holds content files only (`metadata_units_of` returns None).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Protocol, runtime_checkable

from iss_plugin.domain.content_units import MetadataUnit
from iss_plugin.domain.errors import UsageError
from iss_plugin.domain.manifest import FileEntry
from iss_plugin.domain.packages import Package

GROUP = "iss_plugin.content_types"
DEFAULT = "yum"


@dataclass(frozen=True, slots=True)
class Unit:
    """One content file read by its content type: what it is, and its metadata chunks.

    `chunks` is opaque to the store: one text per metadata file of the type (for yum: the
    primary, filelists and other XML of the package), stored and handed back unchanged."""

    package: Package
    chunks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RemoteUnit:
    """A content file a remote repository lists: where it is and how to check it."""

    href: str  # relative to base_url (or absolute)
    base_url: str | None  # xml:base of the entry, when the remote sets one
    checksum_type: str  # "sha256", "sha1", ...
    checksum: str
    size: int
    nevra: str

    @property
    def sha256(self) -> str | None:
        """The checksum itself when it is already lower case (readers store it so): a list of 20,000
        units' digests then holds no second copy of each (2.2 MiB of a pull into Pulp)."""
        if self.checksum_type.lower() != "sha256":
            return None
        lowered = self.checksum.lower()
        return self.checksum if lowered == self.checksum else lowered


@dataclass(frozen=True, slots=True)
class CompressedBlock:
    """One compressed member per metadata file, plus the uncompressed sizes."""

    members: tuple[bytes, ...]
    open_sizes: tuple[int, ...]


# fetch(url, dest, checksum_type, checksum, size) downloads url to dest and verifies what is given;
# what it returns (the local backend's Fetcher: the file's sha256) is not the reader's business.
Fetch = Callable[[str, Path, "str | None", "str | None", "int | None"], object]


@runtime_checkable
class ContentType(Protocol):
    name: str
    # Bumped when chunks or compressed blocks would come out differently (invalidates caches).
    format_version: str

    def read_unit(self, path: Path) -> Unit: ...

    def compress_block(self, chunks: Sequence[tuple[str, ...]]) -> CompressedBlock: ...

    def write_index(
        self, dest: Path, count: int, blocks: Iterable[CompressedBlock], *, revision: str, timestamp: int
    ) -> list[FileEntry]: ...

    def read_remote_index(self, url: str, fetch: Fetch, workdir: Path) -> list[RemoteUnit]: ...

    def is_unit_path(self, relpath: str) -> bool: ...


@runtime_checkable
class MetadataUnits(Protocol):
    """Optional for a content type: units of metadata that are not files (DESIGN.md section 5)."""

    def read_metadata_file(self, path: Path) -> list[MetadataUnit]: ...

    def read_tree_units(self, tree: Path) -> list[MetadataUnit]:
        """The units a tree's index lists (for yum: through repodata/repomd.xml)."""

    def read_remote_units(self, url: str, fetch: Fetch, workdir: Path) -> list[MetadataUnit]: ...

    def write_units(self, dest: Path, units: Sequence[MetadataUnit], timestamp: int) -> list[FileEntry]:
        """Add the units to the index write_index wrote under dest; returns the files written
        (an index file rewritten, such as repomd.xml, replaces its earlier entry)."""


def metadata_units_of(ct: ContentType) -> MetadataUnits | None:
    return ct if isinstance(ct, MetadataUnits) else None


@cache
def _registry() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def content_type_names() -> list[str]:
    return sorted(_registry())


@cache
def get_content_type(name: str = DEFAULT) -> ContentType:
    """The registered content type `name`, loaded on first use."""
    ep = _registry().get(name)
    if ep is None:
        known = ", ".join(content_type_names()) or "none"
        raise UsageError(
            f"unknown content type '{name}': registered types are {known} "
            f"(plugins register under the entry point group '{GROUP}'; is the package installed?)"
        )
    cls = ep.load()
    instance = cls()
    if not isinstance(instance, ContentType):
        raise UsageError(f"content type plugin '{name}' ({ep.value}) does not implement the ContentType protocol")
    return instance


def file_problems(name: str, paths: Sequence[Path]) -> list[str]:
    """What is plainly wrong with files to upload as content type `name` (its `sniff`, when it has one)."""
    sniff = getattr(get_content_type(name), "sniff", None)
    if sniff is None:
        return []
    return [p for p in (sniff(Path(f)) for f in paths) if p]
