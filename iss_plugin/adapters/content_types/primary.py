"""Reading the package list of a yum repository's primary.xml without createrepo_c: an import and a
sync need each package's location, checksum, size and NEVRA only, and loading createrepo_c (with
librpm) for that costs a process about 22 MiB of its memory bound. Streamed: one <package> element
at a time, decompressed as it is read (gz, xz, bz2 or plain; zstd has no reader in the standard
library, so a .zst file is read with createrepo_c, as before). Entities and DTDs are refused."""

from __future__ import annotations

import bz2
import gzip
import lzma
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException, ElementTree

from iss_plugin.adapters.content_types import RemoteUnit

COMMON_NS = "{http://linux.duke.edu/metadata/common}"
XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"


def open_compressed(path: Path) -> BinaryIO:
    """The decompressed bytes of a metadata file as a stream, by its suffix (ValueError for zstd)."""
    name = path.name
    if name.endswith((".zst", ".zck")):
        raise ValueError(f"{name}: zstd has no reader here")
    if name.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if name.endswith(".xz"):
        return lzma.open(path, "rb")  # type: ignore[return-value]
    if name.endswith(".bz2"):
        return bz2.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def read_primary(fh: BinaryIO) -> Iterator[RemoteUnit]:
    """The packages of a primary.xml stream, in document order. Raises ValueError (with the reason)
    for a document that is not a primary.xml or a package entry that lacks a field."""
    try:
        events = ElementTree.iterparse(fh, events=("start", "end"), forbid_dtd=True)
        root = None
        for event, el in events:
            if root is None:
                root = el
                if el.tag != f"{COMMON_NS}metadata":
                    raise ValueError(f"its root element is {el.tag!r}, not metadata")
                continue
            if event != "end" or el.tag != f"{COMMON_NS}package":
                continue
            if el.get("type", "rpm") == "rpm":
                yield _package(el)
            root.clear()  # the packages read so far: memory stays one package deep
    except DefusedXmlException as e:
        raise ValueError(f"it declares entities or a DTD, which are refused ({e!r})") from None
    except ElementTree.ParseError as e:
        raise ValueError(f"not well-formed XML ({e})") from None
    except (OSError, EOFError, lzma.LZMAError) as e:
        raise ValueError(f"cannot read or decompress it ({e})") from None


def _package(el: Element) -> RemoteUnit:
    name = el.findtext(f"{COMMON_NS}name")
    arch = el.findtext(f"{COMMON_NS}arch")
    version = el.find(f"{COMMON_NS}version")
    checksum = el.find(f"{COMMON_NS}checksum")
    size = el.find(f"{COMMON_NS}size")
    location = el.find(f"{COMMON_NS}location")
    if not name or arch is None or version is None or checksum is None or location is None:
        raise ValueError(f"package {name!r} lacks its arch, version, checksum or location")
    href = location.get("href")
    if not href:
        raise ValueError(f"package {name!r} has no location href")
    try:
        package_size = int(size.get("package") or 0) if size is not None else 0
    except ValueError:
        raise ValueError(f"package {name!r} has a size that is not a number") from None
    epoch = version.get("epoch") or "0"
    nevra = f"{name}-{epoch}:{version.get('ver') or ''}-{version.get('rel') or ''}.{arch}"
    return RemoteUnit(
        href=href,
        base_url=location.get(XML_BASE) or None,
        checksum_type=sys.intern((checksum.get("type") or "").lower()),  # one string for all of them
        checksum=(checksum.text or "").strip().lower(),
        size=package_size,
        nevra=nevra,
    )
