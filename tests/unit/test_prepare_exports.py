"""Publishing a content view lets the backend prepare its exports (Pulp: the publication), best
effort: the version is published already, a failure here is a warning and the export makes it."""

from __future__ import annotations

import logging

from iss_plugin.domain.errors import BackendError
from iss_plugin.services.content_views import _prepare_exports


class PreparingBackend:
    def __init__(self, failing: set[str]):
        self.failing, self.prepared = failing, []

    def prepare_export(self, repo: str, version: int) -> None:
        if repo in self.failing:
            raise BackendError(f"Pulp said no to {repo}", transient=True)
        self.prepared.append((repo, version))


def test_every_pinned_version_is_prepared_and_a_failure_is_only_a_warning(caplog):
    backend = PreparingBackend(failing={"O/p/a"})
    with caplog.at_level(logging.WARNING):
        _prepare_exports(backend, [("O/p/a", 3), ("O/p/b", 7)])
    assert backend.prepared == [("O/p/b", 7)]
    assert "O/p/a" in caplog.text and "Pulp said no" in caplog.text


def test_a_backend_without_the_hook_is_left_alone():
    _prepare_exports(object(), [("O/p/a", 3)])
