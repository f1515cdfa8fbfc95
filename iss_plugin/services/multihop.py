"""Multi-hop: a destination is a source for a further tier. An imported content view an admin
blessed here (`iss content-view bless`: pass it on) announces each version it imports as this
server's publish (`iss.content_view.published.v1`, in the import's transaction), so this server's
export workers send it on to its own subscribers, in bundles signed by this server's key.

On a broker several iss servers share, an export worker acts only on publishes of its own server
(and of producers that are no iss server, such as the Foreman hook)."""

from __future__ import annotations

from iss_plugin.adapters.db import catalog as find
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain import events as ev
from iss_plugin.domain.jsontypes import JSONObject
from iss_plugin.domain.versions import VersionNumber

from .importing import ImportSummary
from .outbox import add_event

ISS_SOURCE_PREFIX = ev.source_for_server("")


def announce_imported(uow: UnitOfWork, summary: ImportSummary, server_id: str) -> str | None:
    """The event id of the publish announced for an imported version, or None (not a content
    view, already there, or the view is not passed on here)."""
    if summary.get("state") != "imported" or not summary["content_view"] or not summary["version"]:
        return None
    org = find.organization(uow.session, summary["organization"])
    cv = find.content_view(uow.session, org, summary["content_view"])
    if not cv.blessed:
        return None
    cvv = find.content_view_version(uow.session, cv, VersionNumber.parse(summary["version"]))
    repositories: list[JSONObject] = [
        {
            "product": p.repository.product.label,
            "repository": p.repository.label,
            "redhat": p.repository.product.redhat,
            "content_type": p.repository.content_type,
            "package_count": p.package_count,
            "package_set_digest": p.package_set_digest,
        }
        for p in cvv.repositories
    ]
    data: JSONObject = {
        "organization": org.label,
        "organization_name": org.name,
        "content_view": cv.label,
        "content_view_name": cv.name,
        "version": cvv.number,
        "blessed": True,
        "description": f"imported from {summary['source_server']}",
        "repositories": repositories,
        "origin": "iss",
    }
    return add_event(uow.session, ev.CONTENT_VIEW_PUBLISHED, data, source=server_id, subject=f"{org.label}/{cv.label}")


def from_another_server(envelope: JSONObject, server_id: str) -> bool:
    """An event another iss server emitted (its own export workers handle it, not this one's).

    iss servers put their server id in `source` (letters, digits, '-', '_'); other producers a URI
    such as urn:foreman:<host>, which is never a server id."""
    source = str(envelope.get("source", ""))
    if source.startswith(ISS_SOURCE_PREFIX):
        source = source.removeprefix(ISS_SOURCE_PREFIX)
    elif ":" in source or "/" in source:
        return False
    return source != server_id
