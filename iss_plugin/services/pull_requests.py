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

from iss_plugin.adapters.backends.base import VersionInfo
from iss_plugin.adapters.db import catalog as find
from iss_plugin.adapters.db.models import ContentView, Repository, Subscription
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain import events as ev
from iss_plugin.domain import policy
from iss_plugin.domain.errors import ImportRuleViolation, UsageError
from iss_plugin.domain.jsontypes import JSONObject
from iss_plugin.domain.labels import check_server_id
from iss_plugin.domain.trust import KnownSource, choose_source, organization_map
from iss_plugin.domain.versions import VersionNumber

from .audit import audit
from .catalog import backend_key
from .identity import authorize_account
from .importing import Holding, destination_holding
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


def stream_base(location: str) -> int | None:
    """The source's repository version a repository stream's location starts from (its `base`), or
    None (a full stream). A base that is no version number: refused, nothing imported."""
    values = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query).get("base") or []
    if not values:
        return None
    if len(values) > 1 or not values[0].isdigit() or len(values[0]) > 12:
        raise ImportRuleViolation(
            f"the announced stream '{location[:300]}' names a base that is not one repository version number; "
            "nothing was imported"
        )
    return int(values[0])


# --- destination: the request ----------------------------------------------------------------------


def request_export(
    uow: UnitOfWork,
    *,
    organization: str,
    content_view: str | None = None,
    repository: str | None = None,
    version: VersionNumber | None = None,
    full: bool = False,
    source: str | None = None,
    server_id: str,
    requested_by: str,
) -> JSONObject:
    """Publish this server's iss.export.requested.v1 for `content_view` (or `repository`,
    "PRODUCT/REPO") of the source's `organization` (its label on the source), addressed to the
    trusted source `source` (a name; default: the one that maps the organization), saying what is
    held here (nothing with `full`). A version held here already is not asked for (state "held").
    Every refusal publishes nothing."""
    if bool(content_view) == bool(repository):
        raise UsageError("ask for exactly one of --content-view CV or --repository PRODUCT/REPO; nothing was requested")
    if repository and version is not None:
        raise UsageError("--version is a content view's; a repository is asked for its latest; nothing was requested")
    product, repo = _repository_path(repository) if repository else (None, None)
    with uow:
        known = [
            KnownSource(t.name, t.address, organization_map(t.organizations)) for t in find.trusted_sources(uow.session)
        ]
    target = choose_source(known, organization, source)
    try:
        check_server_id(target.server_id)
    except UsageError:
        raise UsageError(
            f"trusted source '{target.name}' has no server id a request can be addressed to ('{target.server_id}', "
            "its name); nothing was requested; record its server id: "
            f"iss trust add --name {target.name} --public-key KEY --organization {organization} --server-id ID"
        ) from None
    org_label = target.organization
    what = content_view or f"{product}/{repo}"
    with uow:
        org = find.organization(uow.session, org_label)
        if content_view:
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
        elif not full and _local_repository(uow, org_label, product, repo) is None:
            raise UsageError(
                f"repository '{what}' of organization '{org_label}' is not on this server; nothing was requested; "
                "check the labels, or ask for all of it with --full"
            )
        held = None if full else destination_holding(uow, org_label, content_view, product, repo)
        data = ev.export_requested(
            organization=organization,
            destination=server_id,
            source_server=target.server_id,
            reason=REQUESTED,
            content_view=content_view,
            version=str(version) if version else None,
            product=product,
            repository=repo,
            kind="full" if full else "auto",
            base=dict(held) if held else None,
            requested_by=requested_by,
        )
        event_id = add_event(
            uow.session,
            ev.EXPORT_REQUESTED,
            data,
            source=server_id,
            subject=f"{organization}/{what}",
            target_server=target.server_id,
        )
        base = _held_label(held, content_view)
        audit(
            uow.session,
            requested_by,
            "content_import.request",
            f"{organization}/{what}",
            organization=org_label,
            event_id=event_id,
            source=target.name,
            source_server=target.server_id,
            version=data.get("version"),
            base=base,
        )
        uow.commit()
    scope: JSONObject = (
        {"content_view": content_view, "version": data.get("version")}
        if content_view
        else {
            "product": product,
            "repository": repo,
        }
    )
    return {
        "state": "requested",
        "event_id": event_id,
        "source": target.name,
        "source_server": target.server_id,
        "organization": organization,
        **scope,
        "base": base,
    }


def _repository_path(path: str) -> tuple[str, str]:
    product, sep, repo = path.partition("/")
    if not sep or not product or not repo or "/" in repo:
        raise UsageError(f"--repository '{path}': give PRODUCT/REPOSITORY (labels); nothing was requested")
    return product, repo


def _held_label(held: Holding | None, content_view: str | None) -> str | None:
    """What the request says is held: a content view version, or a repository's package set digest."""
    if not held:
        return None
    if content_view:
        return held.get("content_view_version")
    repositories = held.get("repositories") or []
    return str(repositories[0]["package_set_digest"]) if repositories else None


def _local_repository(uow: UnitOfWork, org_label: str, product: str | None, repo: str | None) -> Repository | None:
    from sqlalchemy import select

    return uow.session.scalar(
        select(Repository).where(Repository.backend_key == backend_key(org_label, product or "", repo or ""))
    )


def _local_view(uow: UnitOfWork, organization_id: int, label: str) -> ContentView | None:
    from sqlalchemy import select

    return uow.session.scalar(
        select(ContentView).where(ContentView.organization_id == organization_id, ContentView.label == label)
    )


# --- source: the answer ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AnnouncedStream:
    bundle_id: str
    marker: str  # the subscription's in-flight marker: the version, or a repository's digest
    base: str | None  # what the stream is relative to: a version, or a repository version number
    data: JSONObject  # iss.bundle.ready.v1 data


def announce_stream(
    uow: UnitOfWork, sub: Subscription, request: JSONObject, *, server_id: str, web_base_url: str, actor: str
) -> AnnouncedStream | None:
    """Add the bundle.ready of the stream `sub`'s destination asked for (`request`: the
    export.requested data), in the caller's transaction. None: nothing to send. The export
    account `actor` needs export_content in the organization (only when there is something to send)."""
    if not sub.content_view:
        return _announce_repository_stream(
            uow, sub, request, server_id=server_id, web_base_url=web_base_url, actor=actor
        )
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
    _add_ready(uow, sub, data, server_id)
    return AnnouncedStream(bundle_id, str(plan.target), base_label, data)


@dataclass(frozen=True)
class RepositoryPullPlan:
    target: int  # the source's version number
    target_digest: str
    package_count: int
    base: int | None  # None: a full stream


def plan_repository_pull(versions: Sequence[VersionInfo], held: str | None) -> RepositoryPullPlan | None:
    """What to stream of a repository (its versions here, oldest first) to a destination holding
    the digest `held`: its latest version, incremental from the newest older version with that
    digest, else full. None: nothing to send (no version, or the destination holds the latest)."""
    if not versions:
        return None
    latest = versions[-1]
    if held == latest.digest:
        return None
    base = next((v.number for v in reversed(versions[:-1]) if v.digest == held), None) if held else None
    return RepositoryPullPlan(latest.number, latest.digest, latest.package_count, base)


def repository_stream_location(
    web_base_url: str, organization: str, product: str, repository: str, base: int | None
) -> str:
    """The source's stream of a repository's latest version (from its version `base`), as bundle.ready's location."""
    params = {"organization": organization, "product": product, "repository": repository}
    if base is not None:
        params["base"] = str(base)
    return f"{web_base_url.rstrip('/')}{STREAM_PATH}?{urllib.parse.urlencode(params)}"


def _announce_repository_stream(
    uow: UnitOfWork, sub: Subscription, request: JSONObject, *, server_id: str, web_base_url: str, actor: str
) -> AnnouncedStream | None:
    """announce_stream for a repository subscription: its latest version, as pushes send it."""
    repo = find.repository(uow.session, find.organization(uow.session, sub.organization), sub.product, sub.repository)
    held_repositories = [] if request.get("kind") == "full" else (request.get("base") or {}).get("repositories") or []
    held = next(
        (
            str(r["package_set_digest"])
            for r in held_repositories
            if r.get("product") == sub.product and r.get("repository") == sub.repository
        ),
        None,
    )
    plan = plan_repository_pull(uow.backend.list_versions(repo.backend_key), held)
    if plan is None:
        log.info(
            "export request of %s for %s/%s/%s: nothing to send (it holds %s)",
            sub.destination.server_id,
            sub.organization,
            sub.product,
            sub.repository,
            held,
        )
        return None
    authorize_account(uow, actor, policy.EXPORT_CONTENT, sub.organization)
    base_label = f"repository-version-{plan.base}" if plan.base is not None else None  # as streaming.plan_stream_in
    wanted = StreamRequest(
        sub.organization, product=sub.product, repository=sub.repository, destination=sub.destination.name
    )
    bundle_id = stream_bundle_id(server_id, sub.organization, wanted, base_label)
    data: JSONObject = {
        "bundle_id": bundle_id,
        "source_server": server_id,
        "destination": sub.destination.server_id,
        "organization": sub.organization,
        "product": sub.product,
        "repository": sub.repository,
        "kind": "incremental" if plan.base is not None else "full",
        "base": (
            {
                "repositories": [
                    {
                        "product": sub.product,
                        "repository": sub.repository,
                        "package_count": 0,
                        "package_set_digest": held,
                    }
                ]
            }
            if plan.base is not None
            else None
        ),
        "location": repository_stream_location(web_base_url, sub.organization, sub.product, sub.repository, plan.base),
        "format": "tar",
        "stream": True,
        "repositories": [
            {
                "product": sub.product,
                "repository": sub.repository,
                "package_count": plan.package_count,
                "package_set_digest": plan.target_digest,
            }
        ],
    }
    _add_ready(uow, sub, data, server_id)
    return AnnouncedStream(bundle_id, plan.target_digest, str(plan.base) if plan.base is not None else None, data)


def _add_ready(uow: UnitOfWork, sub: Subscription, data: JSONObject, server_id: str) -> None:
    add_event(
        uow.session,
        ev.BUNDLE_READY,
        data,
        source=server_id,
        subject=str(data["bundle_id"]),
        target_server=sub.destination.server_id,
    )


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
