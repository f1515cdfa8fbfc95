"""One mapping from iss's error hierarchy to HTTP answers, for the pages and the JSON API."""

from __future__ import annotations

from iss_plugin.domain.errors import (
    ConfigError,
    Forbidden,
    IssError,
    NotAuthenticated,
    NotFound,
    RejectedInput,
    UsageError,
)


def status_of(error: IssError) -> int:
    """401 who are you, 403 not permitted, 404 no such thing, 400 bad request, 422 refused input,
    503 transient (try again), 500 anything else."""
    if isinstance(error, NotAuthenticated):
        return 401
    if isinstance(error, Forbidden):
        return 403
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, UsageError | ConfigError):
        return 400
    if isinstance(error, RejectedInput):
        return 422
    if error.transient:
        return 503
    return 500
