"""The JSON Schemas iss speaks, shipped as package data. Loading needs only the standard library;
validation needs `jsonschema`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

ROOT = Path(__file__).parent

# A decoded JSON object. Its values stay `Any` on purpose: what vouches for their shape is the
# JSON Schema the object is checked against (`problems`), not the type checker.
JSONObject: TypeAlias = dict[str, Any]


@cache
def load(relative: str) -> JSONObject:
    """load("bundle/manifest.v1.json") or load("events/iss.bundle.ready.v1.json")."""
    schema: JSONObject = json.loads((ROOT / relative).read_text())
    return schema


@cache
def validator(relative: str) -> Validator:
    """Built once per schema (checking a schema costs ~20 ms; validators are reusable)."""
    import jsonschema

    schema = load(relative)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(_inline_local_refs(schema, schema, ()), format_checker=cls.FORMAT_CHECKER)


def _inline_local_refs(node: Any, root: JSONObject, resolving: tuple[str, ...]) -> Any:
    """The schema with every plain `{"$ref": "#/..."}` replaced by what it names: the same checks,
    ~20% faster (jsonschema resolves a reference on every use; a fan-out validates hundreds of
    events). A reference with siblings, to another document, or recursive is left as it is."""
    if isinstance(node, list):
        return [_inline_local_refs(item, root, resolving) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and len(node) == 1 and ref.startswith("#/") and ref not in resolving:
        target: Any = root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                return node
            target = target[part]
        return _inline_local_refs(target, root, (*resolving, ref))
    return {k: _inline_local_refs(v, root, resolving) for k, v in node.items()}


@cache
def part_validator(relative: str, pointer: str) -> Validator:
    """A validator of one part of a schema, `pointer` naming it ("#/$defs/server_id")."""
    import jsonschema

    schema = load(relative)
    cls = jsonschema.validators.validator_for(schema)
    part = _inline_local_refs({"$ref": pointer}, schema, ())
    if "$ref" in part:
        raise KeyError(f"{relative} has no {pointer}")
    return cls(part, format_checker=cls.FORMAT_CHECKER)


def problems(relative: str, instance: object) -> list[str]:
    """Every way `instance` breaks the schema, each as 'path: message'."""
    return _shown(_located(validator(relative), instance, []))


def problems_item_by_item(relative: str, instance: JSONObject, key: str, items: Iterable[object]) -> list[str]:
    """problems(relative, {**instance, key: list(items)}), the same list, without the whole
    document's decoded form at once: the rest of the document is checked with `key` an empty array,
    then each item alone against the schema's properties/<key>/items (a manifest's 20,000 files[]
    entries as dicts, and jsonschema's walk over them, weigh MiBs). Only for an array whose schema
    is no more than a type and an items rule: nothing else looks at it as a whole."""
    rule = load(relative)["properties"][key]
    if set(rule) - {"type", "items", "description"} or rule.get("type") != "array":
        raise ValueError(f"{relative}: properties/{key} says more than what each item is")
    found = _located(validator(relative), {**instance, key: []}, [])
    item_validator = part_validator(relative, f"#/properties/{key}/items")
    for i, item in enumerate(items):
        found += _located(item_validator, item, [key, i])
    return _shown(found)


def _located(checker: Validator, instance: object, prefix: list[str | int]) -> list[tuple[list[str | int], str]]:
    return [([*prefix, *e.absolute_path], e.message) for e in checker.iter_errors(instance)]


def _shown(found: list[tuple[list[str | int], str]]) -> list[str]:
    found.sort(key=lambda located: located[0])  # stable: jsonschema's order among errors at one path
    return [f"{'/'.join(str(p) for p in path) or '(top)'}: {message}" for path, message in found]
