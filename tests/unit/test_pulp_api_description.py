"""The part of Pulp's API description the Pulp backend keeps (pulp/client.py used_part)."""

from __future__ import annotations

from iss_plugin.adapters.backends.pulp.client import USED_OPERATIONS, used_part


def _op(op_id: str, schema: str) -> dict:
    return {
        "operationId": op_id,
        "requestBody": {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}},
    }


SPEC = {
    "openapi": "3.0.1",
    "info": {"title": "Pulp 3 API", "x-pulp-app-versions": {"core": "3.123.1"}},
    "paths": {
        "/repositories/rpm/rpm/": {"get": _op("repositories_rpm_rpm_list", "RpmRepository"), "parameters": []},
        "/users/": {"get": _op("users_list", "User")},
        "/mixed/": {"get": _op("tasks_read", "Task"), "post": _op("groups_create", "Group")},
    },
    "components": {
        "schemas": {
            "RpmRepository": {"properties": {"remote": {"$ref": "#/components/schemas/RpmRemote"}}},
            "RpmRemote": {"properties": {"policy": {"$ref": "#/components/schemas/Policy"}}},
            "Policy": {"enum": ["immediate"]},
            "Task": {},
            "User": {"properties": {"groups": {"$ref": "#/components/schemas/Group"}}},
            "Group": {},
        },
        "securitySchemes": {"basicAuth": {"type": "http"}},
    },
}


def test_the_used_part_keeps_the_used_operations_and_every_schema_they_refer_to_through_others():
    part = used_part(SPEC)
    assert set(part["paths"]) == {"/repositories/rpm/rpm/", "/mixed/"}
    assert set(part["paths"]["/mixed/"]) == {"get"}  # groups_create dropped, tasks_read kept
    assert part["paths"]["/repositories/rpm/rpm/"]["parameters"] == []  # path-level items stay
    assert set(part["components"]["schemas"]) == {"RpmRepository", "RpmRemote", "Policy", "Task"}
    assert part["components"]["securitySchemes"] == SPEC["components"]["securitySchemes"]
    assert part["info"] == SPEC["info"]  # pulp-glue reads the plugin versions there
    assert set(SPEC["paths"]) == {"/repositories/rpm/rpm/", "/users/", "/mixed/"}  # the input is left as it was


def test_the_families_are_prefixes_of_operation_ids():
    assert all(f.endswith("_") or f == "login" for f in USED_OPERATIONS)
