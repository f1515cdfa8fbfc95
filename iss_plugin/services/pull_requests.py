"""Pull on request (issue 12): a destination asks its source for what it lacks of a content view.

Destination: `iss content-import request` publishes iss.export.requested.v1 (reason "requested",
`base` = what it holds of the view) through its outbox. Source (export worker): with web_base_url
set it answers with iss.bundle.ready.v1 `stream: true` whose location is its GET
/api/v1/bundles/stream for that version; no bundle file is written. Destination (import worker):
pulls that stream like `content-import sync` (services/pulling.py: signature first, each file's
sha256 before it is kept, only what it lacks, one import transaction) and answers imported or
rejected as for a bundle."""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

from iss_plugin.adapters.db import catalog as find
from iss_plugin.adapters.db.models import ContentView, Subscription
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain import events as ev
from iss_plugin.domain import policy
from iss_plugin.domain.errors import ImportRuleViolation, IssError, NotFound, UsageError
from iss_plugin.domain.jsontypes import JSONObject
from iss_plugin.domain.versions import VersionNumber

from .audit import audit
from .identity import authorize_account
from .importing import destination_holding, mapped_organization
from .outbox import add_event
from .streaming import StreamRequest, stream_bundle_id

log = logging.getLogger(__name__)

REQUESTED = "requested"  # iss.export.requested.v1 reason: the destination itself asks
STREAM_PATH = "/api/v1/bundles/stream"


# --- planning (pure) -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PullPlan:
    target: VersionNumber
    base: VersionNumber | None  # None: everything (a full stream)


def plan_pull(
    available: Sequence[VersionNumber], wanted: VersionNumber | None, held: VersionNumber | None
) -> PullPlan | None:
    """What to stream to a destination that asked for `wanted` (None: the latest of `available`)
    holding `held`: incremental from `held` when the source has it and it is older, else full.
    None when there is nothing to send: the destination holds the target, or the source has no
    such version."""
    if not available:
        return None
    target = wanted if wanted is not None else max(available)
    if target not in available or target == held:
        return None
    base = held if held is not None and held < target and held in available else None
    return PullPlan(target, base)


def stream_location(
    web_base_url: str, organization: str, content_view: str, version: VersionNumber, base: VersionNumber | None
) -> str:
    """The source's stream of one content view version, as bundle.ready's location."""
    params = {"organization": organization, "content_view": content_view, "version": str(version)}
    if base is not None:
        params["base"] = str(base)
    return f"{web_base_url.rstrip('/')}{STREAM_PATH}?{urllib.parse.urlencode(params)}"


def stream_origin(location: str) -> str:
    """The source's base URL (what StreamClient takes) from a stream location."""
    parts = urllib.parse.urlsplit(location)
    if parts.scheme not in ("http", "https") or not parts.netloc or not parts.path.endswith(STREAM_PATH):
        raise ImportRuleViolation(
            f"the announced stream '{location[:300]}' is not a source's {STREAM_PATH} (http or https); "
            "nothing was imported"
        )
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.removesuffix(STREAM_PATH), "", ""))


# --- destination: the request ----------------------------------------------------------------------


def request_export(
    uow: UnitOfWork,
    *,
    organization: str,
    content_view: str,
    version: VersionNumber | None,
    full: bool,
    server_id: str,
    requested_by: str,
) -> JSONObject:
    """Publish this server's iss.export.requested.v1 for `content_view` of the source's
    `organization` (its label on the source), saying what is held here (nothing with `full`).
    A version held here already is not asked for (state "held")."""
    try:
        org_label = mapped_organization(uow, organization)
    except IssError:
        raise NotFound(
            f"organization '{organization}' is not mapped to one here by any trusted source; nothing was requested; "
            f"see `iss trust list`, or add the mapping: iss trust add ... --map {organization}=LOCAL_ORG"
        ) from None
    with uow:
        org = find.organization(uow.session, org_label)
        cv = _local_view(uow, org.id, content_view)
        if cv is None and not full:
            raise UsageError(
                f"content view '{content_view}' of organization '{org_label}' is not on this server; nothing was "
                "requested; check the label, or ask for all of it with --full"
            )
        if (
            cv is not None
            and version is not None
            and any((v.major, v.minor) == (version.major, version.minor) for v in cv.versions)
        ):
            return {
                "state": "held",
                "organization": organization,
                "content_view": content_view,
                "version": str(version),
            }
        held = None if full else destination_holding(uow, org_label, content_view, None, None)
        data = ev.export_requested(
            organization=organization,
            destination=server_id,
            reason=REQUESTED,
            content_view=content_view,
            version=str(version) if version else None,
            kind="full" if full else "auto",
            base=dict(held) if held else None,
            requested_by=requested_by,
        )
        event_id = add_event(
            uow.session, ev.EXPORT_REQUESTED, data, source=server_id, subject=f"{organization}/{content_view}"
        )
        audit(
            uow.session,
            requested_by,
            "content_import.request",
            f"{organization}/{content_view}",
            organization=org_label,
            event_id=event_id,
            version=data.get("version"),
            base=held.get("content_view_version") if held else None,
        )
        uow.commit()
    return {
        "state": "requested",
        "event_id": event_id,
        "organization": organization,
        "content_view": content_view,
        "version": data.get("version"),
        "base": held.get("content_view_version") if held else None,
    }


def _local_view(uow: UnitOfWork, organization_id: int, label: str) -> ContentView | None:
    from sqlalchemy import select

    return uow.session.scalar(
        select(ContentView).where(ContentView.organization_id == organization_id, ContentView.label == label)
    )


# --- source: the answer ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AnnouncedStream:
    bundle_id: str
    plan: PullPlan
    data: JSONObject  # iss.bundle.ready.v1 data


def announce_stream(
    uow: UnitOfWork, sub: Subscription, request: JSONObject, *, server_id: str, web_base_url: str, actor: str
) -> AnnouncedStream | None:
    """Add the bundle.ready of the stream `sub`'s destination asked for (`request`: the
    export.requested data), in the caller's transaction. None: nothing to send. The export
    account `actor` needs export_content in the organization (only when there is something to send)."""
    cv = find.content_view(uow.session, find.organization(uow.session, sub.organization), sub.content_view)
    base = request.get("base") or {}
    held = None if request.get("kind") == "full" else base.get("content_view_version")
    wanted = request.get("version")
    available = [VersionNumber(v.major, v.minor) for v in cv.versions]
    plan = plan_pull(
        available, VersionNumber.parse(wanted) if wanted else None, VersionNumber.parse(held) if held else None
    )
    if plan is None:
        log.info(
            "export request of %s for %s/%s %s: nothing to send (it holds %s; versions here: %s)",
            sub.destination.server_id,
            sub.organization,
            sub.content_view,
            wanted or "latest",
            held,
            ", ".join(map(str, sorted(available))) or "none",
        )
        return None
    authorize_account(uow, actor, policy.EXPORT_CONTENT, sub.organization)
    target = find.content_view_version(uow.session, cv, plan.target)
    base_label = str(plan.base) if plan.base else None
    bundle_id = stream_bundle_id(
        server_id,
        sub.organization,
        StreamRequest(sub.organization, content_view=cv.label, version=plan.target, destination=sub.destination.name),
        base_label,
    )
    data: JSONObject = {
        "bundle_id": bundle_id,
        "source_server": server_id,
        "destination": sub.destination.server_id,
        "organization": sub.organization,
        "content_view": cv.label,
        "version": target.number,
        "kind": "incremental" if plan.base else "full",
        "base": {"content_view_version": base_label, "repositories": []} if base_label else None,
        "location": stream_location(web_base_url, sub.organization, cv.label, plan.target, plan.base),
        "format": "tar",
        "stream": True,
        "repositories": [
            {
                "product": p.repository.product.label,
                "repository": p.repository.label,
                "package_count": p.package_count,
                "package_set_digest": p.package_set_digest,
            }
            for p in target.repositories
        ],
    }
    add_event(
        uow.session,
        ev.BUNDLE_READY,
        data,
        source=server_id,
        subject=bundle_id,
        target_server=sub.destination.server_id,
    )
    return AnnouncedStream(bundle_id, plan, data)


# --- destination: what is held already -------------------------------------------------------------


def held_targets(uow: UnitOfWork, org_label: str, content_view: str, version: VersionNumber) -> list[JSONObject]:
    """The repositories of a content view version held here (bundle.imported `repositories`)."""
    org = find.organization(uow.session, org_label)
    cvv = find.content_view_version(uow.session, find.content_view(uow.session, org, content_view), version)
    return [
        {
            "product": p.repository.product.label,
            "repository": p.repository.label,
            "package_count": p.package_count,
            "package_set_digest": p.package_set_digest,
        }
        for p in cvv.repositories
    ]
