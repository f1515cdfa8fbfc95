from __future__ import annotations

import pytest

from tests.integration.pulp.support import new_prefix, pulp_backend


@pytest.fixture
def prefix() -> str:
    return new_prefix()


@pytest.fixture
def pulp1(prefix):
    """A PulpBackend on instance 1 (the source), under a prefix of its own, purged at the end."""
    with pulp_backend(1, prefix) as b:
        yield b


@pytest.fixture
def pulp2(prefix):
    """A PulpBackend on instance 2 (the destination): an independent server."""
    with pulp_backend(2, prefix) as b:
        yield b
