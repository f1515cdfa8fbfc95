"""Uploading metadata files (updateinfo.xml, comps.xml, modules.yaml; plain or compressed) next to
packages: `iss repository upload` sorts the files by name and reads the metadata ones into units."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from iss_plugin.adapters.backends.base import ContentBackend, HoldsMetadataUnits
from iss_plugin.adapters.content_types import get_content_type, metadata_units_of
from iss_plugin.domain.content_unit_rules import refuse_duplicate_keys
from iss_plugin.domain.content_units import MetadataUnit
from iss_plugin.domain.errors import RejectedInput, UsageError

METADATA_SUFFIXES = (".xml", ".yaml", ".yml")
COMPRESSED = ("", ".gz", ".xz", ".bz2", ".zst")


def is_metadata_name(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(s + c) for s in METADATA_SUFFIXES for c in COMPRESSED)


def split_uploads(files: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """(content files, metadata files), by file name."""
    return [f for f in files if not is_metadata_name(f)], [f for f in files if is_metadata_name(f)]


def read_uploaded_units(
    backend: ContentBackend, content_type: str, files: Sequence[Path], repository: str
) -> list[MetadataUnit]:
    """The units of metadata files to upload into `repository`; every problem at once, nothing read
    into the store before they are all good."""
    if not files:
        return []
    holder = metadata_units_of(get_content_type(content_type))
    if holder is None or not isinstance(backend, HoldsMetadataUnits):
        raise UsageError(
            f"repository '{repository}' ({content_type}, backend {backend.name}) cannot hold advisories, "
            "groups or modules; upload only package files",
            [str(f) for f in files],
        )
    units: list[MetadataUnit] = []
    problems: list[str] = []
    for f in files:
        try:
            units.extend(holder.read_metadata_file(f))
        except RejectedInput as e:
            problems.append(e.message + "".join(f"; {p}" for p in e.problems))
    if problems:
        raise RejectedInput(f"metadata files for '{repository}' are not valid; nothing was uploaded", problems)
    refuse_duplicate_keys(units, f"the files uploaded to '{repository}'")
    return units
