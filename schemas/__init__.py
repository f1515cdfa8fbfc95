"""The JSON Schemas iss speaks, shipped as package data. Loading needs only the standard library;
validation needs `jsonschema`."""

from __future__ import annotations

import json
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
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def problems(relative: str, instance: object) -> list[str]:
    """Every way `instance` breaks the schema, each as 'path: message'."""
    errors = sorted(validator(relative).iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}" for e in errors]
