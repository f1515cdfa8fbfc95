"""Yum metadata beyond packages as units: updateinfo.xml (advisories), comps.xml (groups,
categories, environments, langpacks) and modules.yaml (modulemd, modulemd-defaults, ...).

Reading splits a file into units with a canonical body each (XML: C14N 2.0 of the element with
whitespace-only text dropped; YAML: the document dumped with sorted keys), so the same unit read
from any server's file has the same digest. Writing joins the bodies again. XML is parsed with
defusedxml (hostile input: no entities, no DTD tricks), YAML with yaml.safe_load_all."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from typing import Any

import yaml
from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from iss_plugin.domain.content_units import (
    ADVISORY,
    CATEGORY,
    ENVIRONMENT,
    GROUP,
    LANGPACKS,
    MODULEMD,
    MODULEMD_DEFAULTS,
    MODULEMD_OTHER,
    MetadataUnit,
    make_unit,
)
from iss_plugin.domain.errors import RejectedInput

_XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'
_COMPS_DOCTYPE = '<!DOCTYPE comps PUBLIC "-//Red Hat, Inc.//DTD Comps info//EN" "comps.dtd">\n'
COMPS_TAGS = {"group": GROUP, "category": CATEGORY, "environment": ENVIRONMENT, "langpacks": LANGPACKS}
COMPS_KINDS = (GROUP, CATEGORY, ENVIRONMENT, LANGPACKS)
MODULE_KINDS = (MODULEMD, MODULEMD_DEFAULTS, MODULEMD_OTHER)
_MODULE_KEY_FIELDS = ("name", "stream", "version", "context", "arch")


_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ATTR_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", '"': "&quot;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"})


_needs_text_escape = re.compile(r"[&<>\r]").search
_needs_attr_escape = re.compile(r'[&<"\t\n\r]').search


def _text(value: str) -> str:
    return value.translate(_TEXT_ESCAPES) if _needs_text_escape(value) else value


def _attr(value: str) -> str:
    return value.translate(_ATTR_ESCAPES) if _needs_attr_escape(value) else value


def _is_empty(elem: ET.Element) -> bool:
    """No attribute with a value, no text, no child that is not empty itself: says nothing (Pulp
    writes <rights/>, <pushcount/>, <solution/> or src="" where the upstream had none)."""
    return (
        not any(elem.attrib.values())
        and not (elem.text or "").strip()
        and all(_is_empty(c) and not (c.tail or "").strip() for c in elem)
    )


def _drop_empty(elem: ET.Element) -> None:
    """Leave out the empty children and empty attributes of elem (in place), before canonicalizing:
    an empty element or attribute means the same as none, and servers differ in writing them."""
    for k in [k for k, v in elem.attrib.items() if not v]:
        del elem.attrib[k]
    for child in list(elem):
        if _is_empty(child) and not (child.tail or "").strip():
            elem.remove(child)
        else:
            _drop_empty(child)


def _c14n(elem: ET.Element, out: list[str]) -> None:
    tag = str(elem.tag)
    attrib = elem.attrib
    if attrib and not all(attrib.values()):
        attrib = {k: v for k, v in attrib.items() if v}
    if attrib:
        items = sorted(attrib.items()) if len(attrib) > 1 else attrib.items()
        out.append("<" + tag + "".join([" " + k + '="' + _attr(v) + '"' for k, v in items]) + ">")
    else:
        out.append("<" + tag + ">")
    text = elem.text
    if text and (text := text.strip()):
        out.append(_text(text))
    for child in elem:
        start = len(out)
        _c14n(child, out)
        if len(out) == start + 2 and out[start][-2:] != '">' and out[start + 1].startswith("</"):
            del out[start:]  # an empty child (its own empty children already left out): as none
        tail = child.tail
        if tail and (tail := tail.strip()):
            out.append(_text(tail))
    out.append("</" + tag + ">")


def _canonical(elem: ET.Element) -> str:
    """C14N 2.0 of the element with text stripped of surrounding whitespace and empty elements and
    attributes left out (what ET.canonicalize(..., strip_text=True) gives for these namespace-free
    files after _drop_empty, ten times faster)."""
    if any(str(e.tag).startswith("{") for e in elem.iter()):  # namespaces: the general, slower way
        elem.tail = None
        _drop_empty(elem)
        return ET.canonicalize(ET.tostring(elem, encoding="unicode"), strip_text=True)
    out: list[str] = []
    _c14n(elem, out)
    return "".join(out)


def _parse_xml(data: bytes, where: str, root_tag: str) -> ET.Element:
    try:
        root = SafeET.fromstring(data)
    except (ET.ParseError, DefusedXmlException) as e:
        raise RejectedInput(f"{where} is not readable XML: {e}; nothing was changed") from None
    if root.tag != root_tag:
        raise RejectedInput(f"{where}: the root element is <{root.tag}>, a {root_tag}.xml file has <{root_tag}>")
    return root


def _nevra(pkg: ET.Element) -> str:
    epoch = pkg.get("epoch") or "0"
    prefix = f"{epoch}:" if epoch != "0" else ""
    return f"{pkg.get('name')}-{prefix}{pkg.get('version')}-{pkg.get('release')}.{pkg.get('arch')}"


def parse_updateinfo(data: bytes, where: str) -> list[MetadataUnit]:
    """Every <update> of an updateinfo.xml as an advisory unit (key: its <id>)."""
    units, problems = [], []
    for i, update in enumerate(_parse_xml(data, where, "updates")):
        if update.tag != "update":
            problems.append(f"element {i + 1}: <{update.tag}> is not an <update>")
            continue
        advisory_id = (update.findtext("id") or "").strip()
        if not advisory_id:
            problems.append(f"update {i + 1}: no <id>")
            continue
        packages = [_nevra(p) for p in update.iterfind("pkglist/collection/package")]
        units.append(make_unit(ADVISORY, advisory_id, _canonical(update), packages))
    if problems:
        raise RejectedInput(f"{where} is not a valid updateinfo.xml; nothing was changed", problems)
    return units


def parse_comps(data: bytes, where: str) -> list[MetadataUnit]:
    """Every group, category, environment (key: its <id>) and the langpacks of a comps.xml."""
    units, problems = [], []
    for i, elem in enumerate(_parse_xml(data, where, "comps")):
        kind = COMPS_TAGS.get(str(elem.tag))
        if kind is None:
            problems.append(f"element {i + 1}: <{elem.tag}> is not one of {', '.join(COMPS_TAGS)}")
            continue
        key = LANGPACKS if kind == LANGPACKS else (elem.findtext("id") or "").strip()
        if not key:
            problems.append(f"{elem.tag} {i + 1}: no <id>")
            continue
        units.append(make_unit(kind, key, _canonical(elem)))
    if problems:
        raise RejectedInput(f"{where} is not a valid comps.xml; nothing was changed", problems)
    return units


def _module_key(doc: dict[str, Any], data: dict[str, Any], i: int) -> tuple[str, str]:
    document = doc.get("document")
    if document == "modulemd":
        missing = [f for f in _MODULE_KEY_FIELDS if data.get(f) in (None, "")]
        if missing:
            raise ValueError(f"document {i + 1} (modulemd): data lacks {', '.join(missing)}")
        return MODULEMD, ":".join(str(data[f]) for f in _MODULE_KEY_FIELDS)
    if document == "modulemd-defaults":
        if not data.get("module"):
            raise ValueError(f"document {i + 1} (modulemd-defaults): data lacks module")
        return MODULEMD_DEFAULTS, str(data["module"])
    if isinstance(document, str) and document.startswith("modulemd-"):
        return MODULEMD_OTHER, ""
    raise ValueError(f"document {i + 1}: 'document: {document}' is not a modulemd document")


def parse_modules(data: bytes, where: str) -> list[MetadataUnit]:
    """Every document of a modules.yaml: modulemd (key name:stream:version:context:arch),
    modulemd-defaults (key: the module), other modulemd-* documents (kept, keyed by content)."""
    try:
        docs = [d for d in yaml.safe_load_all(data) if d is not None]
    except yaml.YAMLError as e:
        raise RejectedInput(f"{where} is not readable YAML: {e}; nothing was changed") from None
    units, problems = [], []
    for i, doc in enumerate(docs):
        data_ = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(doc, dict) or not isinstance(data_, dict) or "version" not in doc:
            problems.append(f"document {i + 1}: not a mapping with document, version and data")
            continue
        try:
            kind, key = _module_key(doc, data_, i)
        except ValueError as e:
            problems.append(str(e))
            continue
        body = yaml.safe_dump(doc, sort_keys=True, default_flow_style=False, allow_unicode=True)
        unit = make_unit(kind, key, body)
        units.append(unit if key else make_unit(kind, unit.digest, body))
    if problems:
        raise RejectedInput(f"{where} is not a valid modules.yaml; nothing was changed", problems)
    return units


def sniff_metadata(data: bytes) -> str | None:
    """Which metadata file this is: 'updateinfo', 'comps', 'modules', or None."""
    head = data[:4096].lstrip()
    if head.startswith(b"<"):
        if b"<updates" in head:
            return "updateinfo"
        if b"<comps" in head:
            return "comps"
        return None
    return "modules" if b"document:" in data[:65536] and b"modulemd" in data[:65536] else None


PARSERS = {"updateinfo": parse_updateinfo, "comps": parse_comps, "modules": parse_modules}


def _sorted(units: Iterable[MetadataUnit], kinds: Sequence[str]) -> list[MetadataUnit]:
    order = {k: i for i, k in enumerate(kinds)}
    return sorted((u for u in units if u.kind in order), key=lambda u: (order[u.kind], u.key, u.digest))


def updateinfo_xml(units: Iterable[MetadataUnit]) -> bytes | None:
    chosen = _sorted(units, (ADVISORY,))
    if not chosen:
        return None
    return (_XML_DECL + "<updates>\n" + "".join(u.body + "\n" for u in chosen) + "</updates>\n").encode()


def comps_xml(units: Iterable[MetadataUnit]) -> bytes | None:
    chosen = _sorted(units, COMPS_KINDS)
    if not chosen:
        return None
    body = "".join(u.body + "\n" for u in chosen)
    return (_XML_DECL + _COMPS_DOCTYPE + "<comps>\n" + body + "</comps>\n").encode()


def modules_yaml(units: Iterable[MetadataUnit]) -> bytes | None:
    chosen = _sorted(units, MODULE_KINDS)
    if not chosen:
        return None
    return "".join(f"---\n{u.body}...\n" for u in chosen).encode()
