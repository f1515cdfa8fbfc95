"""The Pulp servers of the tests: the two that `deploy/pulp/pulpctl start --instances 2` started.

Not reachable: under CI (env CI set) the test FAILS, elsewhere it is skipped. Every test works
under its own repository-name prefix and deletes what it made at the end, so runs at once do not
collide and the servers are left as they were (content Pulp holds stays as orphans, as in Pulp)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest

from iss_plugin.adapters.backends.pulp import PulpBackend
from iss_plugin.adapters.backends.pulp_instances import PulpInstance, find_instance, reachable

START = "deploy/pulp/pulpctl install && deploy/pulp/pulpctl start --instances 2"


def require_instance(number: int) -> PulpInstance:
    try:
        inst = find_instance(number)
        problem = reachable(inst)
    except FileNotFoundError as e:
        inst, problem = None, f"Pulp instance {number} was never started ({e.filename} is missing)"
    if problem:
        message = f"{problem}; start it with: {START}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI requires Pulp)", pytrace=False)
        pytest.skip(message)
    return inst  # type: ignore[return-value]


def new_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}/"


def purge(backend: PulpBackend) -> None:
    """Delete every repository (with remote and distribution) under the backend's prefix."""
    assert backend.repo_prefix, "purge needs a prefix: it would delete every repository"
    for key in backend.list_repositories():
        backend.delete_repository(key)
    # stream distributions (adapters/backends/pulp/stream_export.py) whose publication went with them
    for d in backend.pulp.list(
        "distributions_rpm_rpm_list", "listing stream distributions", {"name__startswith": "iss-stream-"}
    ):
        if not d.get("publication"):
            backend.pulp.call(
                "distributions_rpm_rpm_delete",
                "deleting a stream distribution",
                parameters={"rpm_rpm_distribution_href": d["pulp_href"]},
            )


@contextlib.contextmanager
def pulp_backend(number: int, prefix: str | None = None) -> Iterator[PulpBackend]:
    inst = require_instance(number)
    backend = inst.backend(repo_prefix=prefix or new_prefix())
    try:
        yield backend
    finally:
        purge(backend)
