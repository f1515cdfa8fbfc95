"""schemathesis against the generated OpenAPI document, through the ASGI app (no network), as an
administrator: no 5xx, and every status code, content type and body as the document describes."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from iss_plugin.web.app import create_app

from .conftest import make_source, tokens_for

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    app = make_source(tmp_path_factory.mktemp("schemathesis"))
    web = create_app(app)
    yield web, tokens_for(app)["admin"]
    web.state.task_runner.shutdown()
    app.close()


def test_the_api_keeps_its_document(served):
    web, token = served
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", web)
    admin = {"Authorization": f"Bearer {token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def keeps_its_document(case) -> None:
            case.call_and_validate(headers=admin, checks=CHECKS)

        keeps_its_document()
