"""The error hierarchy. Each error knows its exit code, its reason code on the bus and
whether retrying could help (transient)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_REJECTED = 3
EXIT_FORBIDDEN = 4


class IssError(Exception):
    """Base of every error iss raises on purpose."""

    exit_code = EXIT_RUNTIME
    reason = "error"  # the reason code carried by iss.bundle.rejected.v1 and parked messages
    transient = False

    def __init__(self, message: str, problems: Iterable[str] = (), *, details: Mapping[str, object] | None = None):
        self.problems = list(problems)
        self.details = details or {}
        super().__init__(message)

    @property
    def message(self) -> str:
        return str(self.args[0])

    def as_dict(self) -> dict[str, object]:
        return {
            "error": type(self).__name__,
            "reason": self.reason,
            "message": self.message,
            "problems": self.problems,
            "details": self.details,
            "transient": self.transient,
        }

    def __str__(self) -> str:
        text = str(self.args[0])
        if self.problems:
            text += "".join(f"\n  - {p}" for p in self.problems)
        return text


class NotFound(IssError):
    exit_code = EXIT_USAGE
    reason = "not_found"


class UsageError(IssError):
    exit_code = EXIT_USAGE
    reason = "usage"


class ConfigError(IssError):
    exit_code = EXIT_USAGE
    reason = "config"


class RejectedInput(IssError):
    """Input that was refused: nothing was changed."""

    exit_code = EXIT_REJECTED
    reason = "rejected"


class BundleIntegrityError(RejectedInput):
    reason = "integrity"


class UntrustedSource(RejectedInput):
    reason = "untrusted"


class SchemaViolation(RejectedInput):
    reason = "schema"


class ImportRuleViolation(RejectedInput):
    reason = "rule_violation"


class Forbidden(RejectedInput):
    """Not allowed: the acting user lacks a permission in an organization (a refusal: nothing changed)."""

    exit_code = EXIT_FORBIDDEN
    reason = "forbidden"


class NotAuthenticated(Forbidden):
    """No acting user could be established: a wrong password, an unknown, expired or revoked token."""

    reason = "not_authenticated"


class BaseMismatch(RejectedInput):
    """The destination lacks the base an incremental bundle needs. `details['has']` says what it has."""

    reason = "base_mismatch"


class InconsistentPlan(IssError):
    """An export plan whose numbers do not add up (what a backend reported changed is not the
    difference of the two versions). Retrying gives the same answer: not transient, a worker parks it."""

    reason = "inconsistent_plan"


class BackendError(IssError):
    reason = "backend"

    def __init__(
        self,
        message: str,
        problems: Iterable[str] = (),
        *,
        transient: bool = False,
        details: Mapping[str, object] | None = None,
    ):
        super().__init__(message, problems, details=details)
        self.transient = transient


class TransientError(IssError):
    reason = "transient"
    transient = True
