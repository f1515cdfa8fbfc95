"""CloudEvents 1.0 envelopes (JSON structured mode) for the iss event types.

Pure values: no I/O. The JSON Schemas live in `schemas/events/<type>.json`; the bus adapter
(`iss_plugin.adapters.bus.codec`) validates against them on publish and on consume.

Routing keys (topic exchange): the type without its version, plus the server an event is
addressed to, when there is one:

    iss.content_view.published          -> the source's export queue
    iss.repository.changed              -> the source's export queue
    iss.export.requested.<source>       -> that source's export queue (a destination's request;
                                           `iss.export.requested` alone: an older destination's,
                                           addressed to no source, see UNADDRESSED_EXPORT_REQUESTED)
    iss.bundle.ready.<destination>      -> that destination's import queue
    iss.bundle.imported.<source>        -> that source's status queue
    iss.bundle.rejected.<source>        -> that source's status queue
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .errors import IssError, RejectedInput
from .jsontypes import JSONObject

CONTENT_VIEW_PUBLISHED = "iss.content_view.published.v1"
REPOSITORY_CHANGED = "iss.repository.changed.v1"
BUNDLE_READY = "iss.bundle.ready.v1"
BUNDLE_IMPORTED = "iss.bundle.imported.v1"
BUNDLE_REJECTED = "iss.bundle.rejected.v1"
EXPORT_REQUESTED = "iss.export.requested.v1"

EVENT_TYPES = (
    CONTENT_VIEW_PUBLISHED,
    REPOSITORY_CHANGED,
    BUNDLE_READY,
    BUNDLE_IMPORTED,
    BUNDLE_REJECTED,
    EXPORT_REQUESTED,
)

# Event types addressed to one server: routing_key() needs `target_server` for them.
ADDRESSED_TYPES = (BUNDLE_READY, BUNDLE_IMPORTED, BUNDLE_REJECTED, EXPORT_REQUESTED)

# What destinations before addressed requests published (no source named): a source's export
# queue still takes it (each source acts only for its own subscriptions), links never carry it.
UNADDRESSED_EXPORT_REQUESTED = "iss.export.requested"

# The reason codes of iss.bundle.rejected.v1: refusals of what was sent (IssError.reason of the
# matching errors), and DESTINATION_ERROR: the destination failed on its own (its content backend,
# Pulp, createrepo_c, its disk, its configuration), the content was not refused. Sources older than
# destination_error park such an answer (their schema lacks it): upgrade sources first.
DESTINATION_ERROR = "destination_error"
REJECTION_REASONS = (
    "base_mismatch",
    "untrusted",
    "integrity",
    "rule_violation",
    "schema",
    "forbidden",
    DESTINATION_ERROR,
)
EXPORT_REQUEST_REASONS = ("manual", "reconcile", "base_mismatch", "subscription", "requested")
BUNDLE_FORMATS = ("dir", "tgz", "iso", "tar")  # tar: a stream (bundle.ready `stream`)

SPECVERSION = "1.0"
DATA_CONTENT_TYPE = "application/json"
SCHEMA_BASE = "https://iss.example/schemas/"


def schema_path(event_type: str) -> str:
    """The schema of a type, relative to the `schemas` package: events/<type>.json."""
    return f"events/{event_type}.json"


def source_for_server(server_id: str) -> str:
    """The CloudEvents `source` of events an iss server emits."""
    return f"urn:iss:server:{server_id}"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def make_envelope(
    event_type: str,
    source: str,
    data: JSONObject,
    *,
    subject: str | None = None,
    event_id: str | None = None,
    time: datetime | None = None,
) -> JSONObject:
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    envelope = {
        "specversion": SPECVERSION,
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": event_type,
        "time": time.astimezone(UTC).isoformat().replace("+00:00", "Z") if time else _now(),
        "datacontenttype": DATA_CONTENT_TYPE,
        "dataschema": f"{SCHEMA_BASE}{schema_path(event_type)}",
        "data": data,
    }
    if subject:
        envelope["subject"] = subject
    return envelope


def routing_key(event_type: str, target_server: str | None = None) -> str:
    """Topic routing key: the type without its version, plus the addressed server when there is one.

    bundle.ready is addressed to the destination; bundle.imported and bundle.rejected are
    answers addressed to the source server that sent the bundle; export.requested to the source
    the destination asks."""
    base = event_type.rsplit(".", 1)[0]
    if target_server is not None and (not target_server or any(c in target_server for c in "*# ")):
        raise ValueError(f"server id {target_server!r} cannot be part of a routing key")
    return f"{base}.{target_server}" if target_server else base


@dataclass(frozen=True, slots=True)
class Event:
    """A decoded, validated event as handlers see it."""

    id: str
    type: str
    source: str
    time: str
    data: JSONObject = field(default_factory=dict)
    subject: str | None = None

    @classmethod
    def from_envelope(cls, envelope: JSONObject) -> Event:
        return cls(
            id=envelope["id"],
            type=envelope["type"],
            source=envelope["source"],
            time=envelope["time"],
            data=envelope.get("data") or {},
            subject=envelope.get("subject"),
        )

    def to_envelope(self) -> JSONObject:
        env = {
            "specversion": SPECVERSION,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time,
            "datacontenttype": DATA_CONTENT_TYPE,
            "dataschema": f"{SCHEMA_BASE}{schema_path(self.type)}",
            "data": self.data,
        }
        if self.subject:
            env["subject"] = self.subject
        return env


# --- data builders: keyword-only, None values dropped, so the shape follows the schema ---------


def _clean(values: JSONObject) -> JSONObject:
    return {k: v for k, v in values.items() if v is not None}


def repository_state(
    product: str,
    repository: str,
    package_count: int,
    package_set_digest: str,
    *,
    redhat: bool | None = None,
    content_id: str | None = None,
    content_type: str | None = None,
) -> JSONObject:
    return _clean(
        {
            "product": product,
            "repository": repository,
            "redhat": redhat,
            "content_id": content_id,
            "content_type": content_type,
            "package_count": package_count,
            "package_set_digest": package_set_digest,
        }
    )


def holding(repositories: list[JSONObject], content_view_version: str | None = None) -> JSONObject:
    """What a server holds: the base of an incremental bundle, or what a destination says it has."""
    return {"content_view_version": content_view_version, "repositories": list(repositories)}


def content_view_published(
    *,
    organization: str,
    content_view: str,
    version: str,
    repositories: list[JSONObject] | None = None,
    blessed: bool | None = None,
    description: str | None = None,
    organization_name: str | None = None,
    content_view_name: str | None = None,
    origin: str = "iss",
) -> JSONObject:
    return _clean(
        {
            "organization": organization,
            "organization_name": organization_name,
            "content_view": content_view,
            "content_view_name": content_view_name,
            "version": version,
            "blessed": blessed,
            "description": description,
            "repositories": repositories,
            "origin": origin,
        }
    )


def repository_changed(
    *,
    organization: str,
    product: str,
    repository: str,
    version: int,
    package_count: int,
    package_set_digest: str,
    redhat: bool | None = None,
    content_id: str | None = None,
    content_type: str | None = "yum",
    previous_package_set_digest: str | None = None,
) -> JSONObject:
    return _clean(
        {
            "organization": organization,
            "product": product,
            "repository": repository,
            "redhat": redhat,
            "content_id": content_id,
            "content_type": content_type,
            "version": version,
            "package_count": package_count,
            "package_set_digest": package_set_digest,
            "previous_package_set_digest": previous_package_set_digest,
        }
    )


def _scope(content_view: str | None, version: str | None, product: str | None, repository: str | None) -> JSONObject:
    return _clean({"content_view": content_view, "version": version, "product": product, "repository": repository})


def export_requested(
    *,
    organization: str,
    destination: str,
    reason: str,
    content_view: str | None = None,
    version: str | None = None,
    product: str | None = None,
    repository: str | None = None,
    kind: str = "auto",
    base: JSONObject | None = None,
    requested_by: str | None = None,
    source_server: str | None = None,
) -> JSONObject:
    """`source_server`: the source asked (its routing key names it too); absent in an older
    destination's request, which any source it reaches may answer."""
    data = {
        "organization": organization,
        "destination": destination,
        **_clean({"source_server": source_server}),
        **_scope(content_view, version, product, repository),
        "kind": kind,
        "base": base,
        "reason": reason,
    }
    if requested_by:
        data["requested_by"] = requested_by
    return data


def bundle_ready(
    *,
    bundle_id: str,
    source_server: str,
    destination: str,
    organization: str,
    kind: str,
    base: JSONObject | None,
    location: str,
    format: str,
    repositories: list[JSONObject],
    content_view: str | None = None,
    version: str | None = None,
    product: str | None = None,
    repository: str | None = None,
    size: int | None = None,
    chunks: int | None = None,
    manifest_sha256: str | None = None,
    stream: bool | None = None,
) -> JSONObject:
    data = {
        "bundle_id": bundle_id,
        "source_server": source_server,
        "destination": destination,
        "organization": organization,
        **_scope(content_view, version, product, repository),
        "kind": kind,
        "base": base,
        "location": location,
        "format": format,
        "repositories": repositories,
    }
    return data | _clean({"size": size, "chunks": chunks, "manifest_sha256": manifest_sha256, "stream": stream})


def bundle_imported(
    *,
    bundle_id: str,
    source_server: str,
    destination: str,
    organization: str,
    repositories: list[JSONObject],
    already_imported: bool = False,
    content_view: str | None = None,
    version: str | None = None,
    product: str | None = None,
    repository: str | None = None,
) -> JSONObject:
    return {
        "bundle_id": bundle_id,
        "source_server": source_server,
        "destination": destination,
        "organization": organization,
        **_scope(content_view, version, product, repository),
        "already_imported": already_imported,
        "repositories": repositories,
    }


def is_destination_failure(error: IssError) -> bool:
    """An import that failed on the destination itself, not a refusal of what was sent: anything
    but RejectedInput (a non-transient BackendError, a disk without room, a missing key...).
    Transient errors never get this far: they are retried, nothing is answered."""
    return not isinstance(error, RejectedInput)


def rejection_reason(error: IssError) -> str:
    """The reason iss.bundle.rejected.v1 (and the push endpoint's answer) gives for `error`: a
    refusal by its own code (one the schema does not list: rule_violation, as always); a failure
    of the destination's own: destination_error."""
    if error.reason in REJECTION_REASONS:
        return error.reason
    return DESTINATION_ERROR if is_destination_failure(error) else "rule_violation"


def import_failure_reason(error: IssError) -> str:
    """The reason the CLI (`iss content-import ... --output json`) and the import task API give for
    an import that failed: destination_error as the answer to the source says, for a failure of
    the destination's own; a refusal, a usage or configuration error, something not found or a
    transient error (try again) keeps its own code."""
    if error.transient or not is_destination_failure(error) or error.reason in ("usage", "not_found", "config"):
        return error.reason
    return DESTINATION_ERROR


def bundle_rejected(
    *,
    bundle_id: str | None,
    source_server: str,
    destination: str,
    reason: str,
    message: str,
    problems: list[str] | None = None,
    has: JSONObject | None = None,
    organization: str | None = None,
    content_view: str | None = None,
    version: str | None = None,
    product: str | None = None,
    repository: str | None = None,
    details: Mapping[str, object] | None = None,
) -> JSONObject:
    if reason not in REJECTION_REASONS:
        raise ValueError(f"rejection reason {reason!r} is not one of {', '.join(REJECTION_REASONS)}")
    data = {
        "bundle_id": bundle_id,
        "source_server": source_server,
        "destination": destination,
        **_clean({"organization": organization}),
        **_scope(content_view, version, product, repository),
        "reason": reason,
        "message": message,
        "problems": list(problems or []),
    }
    if reason == "base_mismatch" or has is not None:
        data["has"] = has
    if details:
        data["details"] = details
    return data
