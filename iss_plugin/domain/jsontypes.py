"""The type of decoded JSON objects: event envelopes and their data, bundle manifests.

Their shape is not known to the type checker but to a JSON Schema (schemas/), which the bus codec and
the bundle reader check them against where they cross the process boundary; code reads the fields
the schema requires. Values that are only passed on, not read, take `Mapping[str, object]` instead."""

from __future__ import annotations

from typing import Any

JSONObject = dict[str, Any]
