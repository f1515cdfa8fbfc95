"""Reading repomd.xml without createrepo_c: an import only needs its records, and loading
createrepo_c (with librpm) for that costs a pulling destination 13-22 MiB of its memory bound."""

from __future__ import annotations

from dataclasses import dataclass

from defusedxml import DefusedXmlException, ElementTree

REPO_NS = "{http://linux.duke.edu/metadata/repo}"


@dataclass(frozen=True)
class RepomdRecord:
    type: str
    location_href: str
    location_base: str | None
    checksum_type: str | None
    checksum: str | None
    size: int | None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text and text.strip() else None
    except ValueError:
        raise ValueError(f"size {text!r} is not a number") from None


def parse_repomd(data: bytes) -> dict[str, RepomdRecord]:
    """The records of a repomd.xml by type (the first of a type wins, as in createrepo_c).
    Raises ValueError (with the reason) for anything that is not a repomd.xml."""
    try:
        root = ElementTree.fromstring(data)
    except DefusedXmlException as e:
        raise ValueError(f"it declares entities or a DTD, which are refused ({e!r})") from None
    except ElementTree.ParseError as e:
        raise ValueError(f"not well-formed XML ({e})") from None
    if root.tag != f"{REPO_NS}repomd":
        raise ValueError(f"its root element is {root.tag!r}, not repomd")
    records: dict[str, RepomdRecord] = {}
    for data_el in root.findall(f"{REPO_NS}data"):
        kind = data_el.get("type")
        location = data_el.find(f"{REPO_NS}location")
        if not kind or location is None or not location.get("href"):
            raise ValueError(f"a <data> element has no type or no location href ({kind!r})")
        checksum = data_el.find(f"{REPO_NS}checksum")
        size = data_el.find(f"{REPO_NS}size")
        records.setdefault(
            kind,
            RepomdRecord(
                type=kind,
                location_href=str(location.get("href")),
                location_base=location.get("{http://www.w3.org/XML/1998/namespace}base") or location.get("base"),
                checksum_type=checksum.get("type") if checksum is not None else None,
                checksum=(checksum.text or "").strip() or None if checksum is not None else None,
                size=_int(size.text) if size is not None else None,
            ),
        )
    return records
