"""Automatic propagation (the bus issue): what the export, import and status consumers and the
reconcile pass do. Each handler runs in one unit of work: its state change, the events it emits
(through the outbox) and the processed event id commit together, so a redelivered event has no
second effect. A push to an online destination commits its claim before it and its answer after
it (the push runs with no transaction open, see _push); a handler's subscriptions not reached yet
are then locked and read again as their turn comes (_one_by_one), so exactly one worker pushes a
version to a subscription."""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypedDict

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from iss_plugin.adapters.bundles.fetch import fetch_bundle
from iss_plugin.adapters.db import catalog as find
from iss_plugin.adapters.db.memo import transaction_memo
from iss_plugin.adapters.db.models import ContentView, ContentViewVersion, Destination, Subscription
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain import events as ev
from iss_plugin.domain import policy
from iss_plugin.domain.errors import (
    Forbidden,
    ImportRuleViolation,
    IssError,
    TransientError,
)
from iss_plugin.domain.jsontypes import JSONObject
from iss_plugin.domain.resend import resend_wait
from iss_plugin.domain.versions import VersionNumber
from iss_plugin.failpoints import failpoint

from . import exporting, fanout, importing, multihop, pull_requests, pulling, streaming
from .idempotency import (
    already_processed,
    claim_forced_send,
    commit_processed,
    forced_send_claimed,
    mark_processed,
    release_forced_send,
)
from .identity import authorize_account
from .outbox import add_event

if TYPE_CHECKING:
    from iss_plugin.adapters.bundles.signing import Signer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceContext:
    server_id: str
    signer: Signer
    exports_path: Path
    actor: str = "iss-export"
    grace: timedelta = timedelta(minutes=5)
    staging_root: Path | None = None  # on the store's filesystem, so staged trees are hardlinks
    web_base_url: str | None = None  # set: bundle.ready carries <web_base_url>/api/v1/bundles/<id>/download


@dataclass(frozen=True)
class DestinationContext:
    server_id: str
    imports_path: Path
    actor: str = "iss-import"
    fetch_roots: tuple[Path, ...] = ()  # file:// bundle locations must lie under these (when set)
    signer: Signer | None = None  # signs http(s) bundle downloads as this destination


class Propagated(exporting.ExportResult):
    """A bundle exported for a subscription and announced to its destination."""

    destination: str  # its server id
    reason: str


class ImportRefused(TypedDict):
    state: Literal["rejected"]
    reason: str  # what the answer iss.bundle.rejected.v1 says (events.rejection_reason)


def _now() -> datetime:
    return datetime.now(UTC)


# --- source: export ------------------------------------------------------------------------------


def on_content_view_published(uow: UnitOfWork, envelope: JSONObject, ctx: SourceContext) -> list[Propagated]:
    data = envelope["data"]
    with uow:
        if already_processed(uow.session, envelope["id"], "export"):
            return []
        if multihop.from_another_server(envelope, ctx.server_id):  # a shared broker: its own workers send it
            return []
        made: list[Propagated] = []
        if _is_blessed(uow, data["organization"], data["content_view"]):
            subs = _subscriptions(uow, data["organization"], content_view=data["content_view"], lock=True)
            for sub in _one_by_one(uow, subs):
                made += [b for b in [propagate(uow, sub, ctx, reason="published", version=data["version"])] if b]
        failpoint("export.before_commit")  # crash tests: bundle written, subscriptions locked, nothing committed
        commit_processed(uow, envelope["id"], "export")
        return made


def on_repository_changed(uow: UnitOfWork, envelope: JSONObject, ctx: SourceContext) -> list[Propagated]:
    data = envelope["data"]
    with uow:
        if already_processed(uow.session, envelope["id"], "export") or multihop.from_another_server(
            envelope, ctx.server_id
        ):
            return []
        subs = _subscriptions(
            uow, data["organization"], product=data["product"], repository=data["repository"], lock=True
        )
        made = [b for sub in _one_by_one(uow, subs) if (b := propagate(uow, sub, ctx, reason="repository_changed"))]
        commit_processed(uow, envelope["id"], "export")
        return made


def on_export_requested(uow: UnitOfWork, envelope: JSONObject, ctx: SourceContext) -> list[Propagated]:
    """A bundle (or, asked by the destination itself, a stream) for the subscriptions of the
    requesting destination. A request addressed to another source is not acted on (a binding left
    over, or a message moved by hand); one addressed to none (an older destination's) is.

    A forced send: whatever is in flight, but once per subscription for this request (its event
    id), even when two workers handle it at once (idempotency.claim_forced_send)."""
    data = envelope["data"]
    addressed = data.get("source_server")
    if addressed is not None and addressed != ctx.server_id:
        log.warning(
            "export request %s of %s is addressed to source %s, not to this server (%s): not acted on",
            envelope["id"],
            data["destination"],
            addressed,
            ctx.server_id,
        )
        return []
    with uow:
        if already_processed(uow.session, envelope["id"], "export"):
            return []
        dest = uow.session.scalar(select(Destination).where(Destination.server_id == data["destination"]))
        made: list[Propagated] = []
        if dest is not None:
            subs = _subscriptions(
                uow,
                data["organization"],
                content_view=data.get("content_view"),
                product=data.get("product"),
                repository=data.get("repository"),
                lock=True,
            )
            for sub in _one_by_one(uow, [s for s in subs if s.destination_id == dest.id]):
                if data["reason"] == pull_requests.REQUESTED and ctx.web_base_url:
                    made += [b for b in [_announce_stream(uow, sub, ctx, data)] if b]  # a pull: no bundle file
                    continue
                if forced_send_claimed(uow.session, envelope["id"], sub.id):
                    continue  # sent for this request by another handler of it (checked under the lock)
                if data.get("kind") == "full" or data.get("base") is None:
                    sub.acknowledged = None
                made += [b for b in [propagate(uow, sub, ctx, reason=data["reason"], forced_by=envelope["id"])] if b]
        commit_processed(uow, envelope["id"], "export")
        return made


def _announce_stream(uow: UnitOfWork, sub: Subscription, ctx: SourceContext, data: JSONObject) -> Propagated | None:
    """The destination asked itself (services/pull_requests.py): announce the stream of what it lacks."""
    assert ctx.web_base_url is not None
    made = pull_requests.announce_stream(
        uow, sub, data, server_id=ctx.server_id, web_base_url=ctx.web_base_url, actor=ctx.actor
    )
    if made is None:
        return None
    sub.in_flight, sub.in_flight_since = made.marker, _now()
    ready = made.data
    return {
        "bundle_id": made.bundle_id,
        "path": ready["location"],
        "format": "tar",
        "kind": ready["kind"],
        "organization": sub.organization,
        "content_view": sub.content_view or None,
        "version": ready.get("version"),
        "base": made.base,
        "files": [],
        "size": 0,
        "repositories": {},
        "destination": sub.destination.server_id,
        "reason": data["reason"],
    }


def propagate(
    uow: UnitOfWork,
    sub: Subscription,
    ctx: SourceContext,
    *,
    reason: str,
    forced_by: str | None = None,
    version: str | None = None,
) -> Propagated | None:
    """Export what `sub`'s destination lacks and announce the bundle. None when there is nothing to
    send: it is up to date, or a bundle is already in flight to it.

    `forced_by`: the id of the request that forces the send (an export request's event id): sent
    even when the destination is up to date or a bundle is in flight to it (another request's: it
    may be the one the destination lost or refused, and a marker cannot tell one under way from
    one lost). The request's claim (idempotency.claim_forced_send) commits with the in-flight
    marker; the caller has checked under `sub`'s lock that this request has not sent to it yet.

    One bundle in flight per subscription: when it is acknowledged, the status consumer calls this
    again for the next one (reconcile re-sends a lost one after the grace time). A content view goes
    version by version: a destination holding X gets the next version after X, incremental from X;
    one holding nothing gets `version` (the published one), else the latest, in full. So a burst of
    publishes arrives as that many versions, each exported once per destination. A repository goes
    to its latest version, incremental from the one acknowledged."""
    dest = sub.destination
    force = forced_by is not None
    if sub.in_flight and not force:
        return None
    if sub.content_view:
        cv = _content_view(uow, sub.organization, sub.content_view)
        target = _next_version(cv, sub.acknowledged, version, force)
        if target is None:
            return None
        base = (
            sub.acknowledged if sub.acknowledged and _has_older_version(cv, sub.acknowledged, target.number) else None
        )
        request = exporting.ExportRequest(
            organization=sub.organization,
            scope="content_view_version",
            incremental=base is not None,
            content_view=cv.label,
            version=VersionNumber(target.major, target.minor),
            from_version=base,
            destination=dest.name,
            fmt="tgz",
            path=ctx.exports_path / dest.server_id,
        )
        marker = target.number
    else:
        org = find.organization(uow.session, sub.organization)
        repo = find.repository(uow.session, org, sub.product, sub.repository)
        versions = uow.backend.list_versions(repo.backend_key)
        latest = versions[-1]
        if sub.acknowledged == latest.digest and not force:
            return None
        base_version = next(
            (v.number for v in reversed(versions) if v.digest == sub.acknowledged and v.number != latest.number), None
        )
        request = exporting.ExportRequest(
            organization=sub.organization,
            scope="repository",
            incremental=base_version is not None,
            product=sub.product,
            repository=sub.repository,
            from_version=str(base_version) if base_version is not None else None,
            destination=dest.name,
            fmt="tgz",
            path=ctx.exports_path / dest.server_id,
        )
        marker = latest.digest
    authorize_account(uow, ctx.actor, policy.EXPORT_CONTENT, sub.organization)  # only when there is something to send
    if dest.online and dest.url:
        return _push(uow, sub, ctx, request, marker, reason, forced_by=forced_by)
    if sub.content_view:  # one bundle for every destination that shares the base (services.fanout)
        result = fanout.export_once(
            uow,
            request,
            marker,
            exports_path=ctx.exports_path,
            signer=ctx.signer,
            server_id=ctx.server_id,
            actor=ctx.actor,
            staging_root=ctx.staging_root,
        )
    else:
        result = exporting.export_in_transaction(
            uow,
            request,
            out_dir=ctx.exports_path,
            signer=ctx.signer,
            server_id=ctx.server_id,
            actor=ctx.actor,
            staging_root=ctx.staging_root,
        )
    add_event(
        uow.session,
        ev.BUNDLE_READY,
        _bundle_ready_data(result, sub, ctx),
        source=ctx.server_id,
        subject=result["bundle_id"],
        target_server=dest.server_id,
    )
    sub.in_flight, sub.in_flight_since = marker, _now()
    if forced_by is not None:
        claim_forced_send(uow.session, forced_by, sub.id)
    return {**result, "destination": dest.server_id, "reason": reason}


def _push(
    uow: UnitOfWork,
    sub: Subscription,
    ctx: SourceContext,
    request: exporting.ExportRequest,
    marker: str,
    reason: str,
    *,
    forced_by: str | None = None,
) -> Propagated | None:
    """An online destination: the bundle's stream (the entries GET /api/v1/bundles/stream serves),
    of a content view version or of a repository's latest version, is POSTed to its
    /api/v1/imports/push, no bundle file is written. Its answer is published into this server's own
    outbox as if the destination had sent it over the bus (source = the destination's server id,
    addressed here): the status consumer records it as any other.

    `sub` must be locked in the caller's current transaction and read under that lock (handlers
    walk their subscriptions with `_one_by_one`, reconcile locks one per transaction): that lock,
    the caller's check that nothing is in flight and the marker set here, committed, are the claim.
    Exactly one worker pushes a version to a subscription: any other (a second export worker, the
    status worker, reconcile) waits for the lock and then finds the marker, and skips it.

    The push (minutes for a large one) runs with no transaction open, so this server's database is
    not locked meanwhile: what the caller did so far and the in-flight marker are committed first,
    the answer is committed in a transaction of its own after it. The marker, not a row lock,
    keeps others from pushing the same concurrently. A crash during the push loses nothing:
    reconcile pushes again once the committed marker is older than the grace time (a repeat is
    answered already-imported); the caller's event, not marked processed yet, is redelivered and
    finds it in flight. A push that fails puts the marker back, committed, before it raises:
    nothing is in flight, as before, and what the caller did before the push stays committed. A
    forced push's claim of its request (`forced_by`) commits with the marker and goes with it."""
    from iss_plugin.adapters.bundles.push import push_stream

    dest = sub.destination
    assert dest.url is not None, "an online destination has a url"
    wanted = streaming.StreamRequest(
        sub.organization,
        content_view=request.content_view,
        version=request.version,
        product=request.product,
        repository=request.repository,
        base=request.from_version,  # a version "A.B", or a repository version number
        destination=dest.name,
    )
    staging = ctx.staging_root or ctx.exports_path.parent / f".{ctx.exports_path.name}-staging"
    planned = streaming.plan_stream_in(uow, wanted, signer=ctx.signer, server_id=ctx.server_id, staging_root=staging)
    if planned is None:
        return None
    m = planned.manifest  # what is sent: the answer names it whatever the destination could read
    if not sub.content_view:  # the version planned, should one have been added since `marker` was read
        marker = m.repositories[0].target.package_set_digest
    before = sub.in_flight, sub.in_flight_since
    sub.in_flight, sub.in_flight_since = marker, _now()
    if forced_by is not None:
        claim_forced_send(uow.session, forced_by, sub.id)
    claimed = False
    try:
        uow.commit()
        claimed = True
        state, answer = push_stream(dest.url, list(planned.entries()), organization=sub.organization, signer=ctx.signer)
    except Exception:
        _put_back_in_flight(uow, sub, marker, before, forced_by if claimed else None)
        raise
    finally:
        planned.close()
    answer = answer | {"bundle_id": m.bundle_id, "destination": dest.server_id, "source_server": ctx.server_id}
    for k in ("content_view", "version", "product", "repository"):
        answer.pop(k, None)
    if sub.content_view:
        answer |= {"content_view": sub.content_view, "version": marker}
    else:  # the status consumer acknowledges a repository by the digest its answer names
        answer |= {"product": sub.product, "repository": sub.repository}
    add_event(
        uow.session,
        ev.BUNDLE_IMPORTED if state == "imported" else ev.BUNDLE_REJECTED,
        answer,
        source=dest.server_id,
        subject=planned.manifest.bundle_id,
        target_server=ctx.server_id,
    )
    uow.commit()  # the answer, on its own: whatever the caller does next cannot lose it
    return {
        "bundle_id": m.bundle_id,
        "path": f"{dest.url.rstrip('/')}/api/v1/imports/push",
        "format": "tar",
        "kind": m.kind,
        "organization": sub.organization,
        "content_view": sub.content_view or None,
        "version": marker if sub.content_view else None,
        "base": request.from_version,
        "files": [],
        "size": sum(f.size for f in planned.files),
        "repositories": {},
        "destination": dest.server_id,
        "reason": reason,
    }


def _put_back_in_flight(
    uow: UnitOfWork,
    sub: Subscription,
    marker: str,
    before: tuple[str | None, datetime | None],
    forced_by: str | None,
) -> None:
    """A push that failed: the in-flight marker as it was before it, unless it changed meanwhile,
    and no claim of its forced request (redelivered, the request pushes again)."""
    uow.rollback()
    uow.session.refresh(sub, with_for_update=True)
    if sub.in_flight == marker:
        sub.in_flight, sub.in_flight_since = before
    if forced_by is not None:
        release_forced_send(uow.session, forced_by, sub.id)
    uow.commit()


def bundle_location(path: Path, bundle_id: str, web_base_url: str | None) -> str:
    """Where a destination fetches a bundle: this server's `iss serve` when web_base_url is set, else the file."""
    if web_base_url:
        return f"{web_base_url.rstrip('/')}/api/v1/bundles/{bundle_id}/download"
    return path.resolve().as_uri()


def _bundle_ready_data(result: exporting.ExportResult, sub: Subscription, ctx: SourceContext) -> JSONObject:
    path = Path(result["path"])
    data: JSONObject = {
        "bundle_id": result["bundle_id"],
        "source_server": ctx.server_id,
        "destination": sub.destination.server_id,
        "organization": sub.organization,
        "kind": result["kind"],
        "location": bundle_location(path, result["bundle_id"], ctx.web_base_url),
        "format": result["format"],
        "size": result["size"],
        **({"sha256": fanout.bundle_sha256(path)} if path.is_file() else {}),
        "base": None,
        "repositories": [
            {
                "product": k.split("/")[0],
                "repository": k.split("/")[1],
                "package_count": v["package_count"],
                "package_set_digest": v["target_digest"],
            }
            for k, v in result["repositories"].items()
        ],
    }
    if sub.content_view:
        data |= {"content_view": sub.content_view, "version": result["version"]}
        if result["kind"] == "incremental":
            data["base"] = {"content_view_version": result["base"], "repositories": []}
    else:
        data |= {"product": sub.product, "repository": sub.repository}
        if result["kind"] == "incremental":
            data["base"] = {
                "repositories": [
                    {
                        "product": sub.product,
                        "repository": sub.repository,
                        "package_count": 0,
                        "package_set_digest": sub.acknowledged,
                    }
                ]
            }
    return data


def _next_version(
    cv: ContentView, acknowledged: str | None, wanted: str | None, force: bool
) -> ContentViewVersion | None:
    ordered = sorted(cv.versions, key=lambda v: (v.major, v.minor))
    if not ordered:
        return None
    if acknowledged is None:
        return next((v for v in ordered if v.number == wanted), ordered[-1])
    have = VersionNumber.parse(acknowledged)
    later = [v for v in ordered if (v.major, v.minor) > (have.major, have.minor)]
    if later:
        return later[0]
    return ordered[-1] if force else None


def _is_newer(version: str | None, than: str | None) -> bool:
    if than is None:
        return True
    if version is None:
        return False
    return VersionNumber.parse(version) > VersionNumber.parse(than)


def _has_older_version(cv: ContentView, version: str, than: str) -> bool:
    want = VersionNumber.parse(version)
    return any((v.major, v.minor) == (want.major, want.minor) for v in cv.versions) and want < VersionNumber.parse(than)


def _content_view(uow: UnitOfWork, org_label: str, cv_label: str) -> ContentView:
    """Read once per transaction: a fan-out asks for the same view (and its versions) per subscriber."""
    memo = transaction_memo(uow.session)
    key = ("content_view", org_label, cv_label)
    if key not in memo:
        memo[key] = find.content_view(uow.session, find.organization(uow.session, org_label), cv_label)
    cv: ContentView = memo[key]
    return cv


def _is_blessed(uow: UnitOfWork, org_label: str, cv_label: str) -> bool:
    cv = uow.session.scalar(
        select(ContentView)
        .join(ContentView.organization)
        .where(ContentView.label == cv_label, ContentView.organization.has(label=org_label))
    )
    return bool(cv and cv.blessed)  # an imported (import-only) view blessed here is passed on (multihop)


def _subscriptions(
    uow: UnitOfWork,
    org: str,
    *,
    content_view: str | None = None,
    product: str | None = None,
    repository: str | None = None,
    lock: bool = False,
) -> list[Subscription]:
    """`lock`: row locks (PostgreSQL; SQLite writers are serialized anyway, BEGIN IMMEDIATE), taken in
    id order, so two workers handling events of the same subscription decide one after the other."""
    q = select(Subscription).where(Subscription.organization == org)
    if content_view:
        q = q.where(Subscription.content_view == content_view)
    else:
        q = q.where(Subscription.product == (product or ""), Subscription.repository == (repository or ""))
    q = q.order_by(Subscription.id).options(selectinload(Subscription.destination))  # one query, not one each
    if lock:  # populate_existing: what the lock waited for, not what this session read before it
        q = q.with_for_update().execution_options(populate_existing=True)
    subs = list(uow.session.scalars(q))
    if lock:
        _held_locks(uow).update(s.id for s in subs)
    return subs


def _held_locks(uow: UnitOfWork) -> set[int]:
    """The ids of the subscriptions locked in the current transaction (a commit releases them all)."""
    held: set[int] = transaction_memo(uow.session).setdefault("locked_subscriptions", set())
    return held


def _one_by_one(uow: UnitOfWork, subs: list[Subscription]) -> Iterator[Subscription]:
    """Each of `subs` (loaded with `lock=True`) as its turn comes: locked in the transaction current
    then and read under that lock. A push to an online destination commits its claim before it
    runs, which releases the locks of every subscription the loop has not reached yet: a concurrent
    worker or reconcile may have claimed one since, so it is locked and read again (by SELECT ...
    FOR UPDATE; on SQLite the transaction's write lock) before this handler decides anything about
    it. One that is gone (its destination removed) is skipped. Until a commit nothing is re-read:
    a fan-out to offline destinations costs no query more."""
    for sub in subs:
        if sub.id in _held_locks(uow):
            yield sub
            continue
        again = uow.session.scalar(
            select(Subscription)
            .where(Subscription.id == sub.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if again is not None:
            _held_locks(uow).add(again.id)
            yield again


# --- source: status ------------------------------------------------------------------------------


def on_bundle_status(uow: UnitOfWork, envelope: JSONObject, ctx: SourceContext) -> Propagated | None:
    """Record what a destination acknowledged; on base_mismatch re-plan from what it has. Any other
    answer is recorded (`last_rejection`: reason and message) and counts in the failures in a row
    that reconcile backs off on (domain/resend.py): a refusal, or destination_error (its Pulp, disk
    or createrepo_c failed), which fails the same way until someone fixes the destination too. A
    refused bundle is retired (the next is built afresh); after destination_error it is sent again."""
    data = envelope["data"]
    with uow:
        if already_processed(uow.session, envelope["id"], "status"):
            return None
        dest = uow.session.scalar(select(Destination).where(Destination.server_id == data["destination"]))
        result: Propagated | None = None
        if dest is not None:
            subs = [
                s
                for s in _subscriptions(
                    uow,
                    data.get("organization", ""),
                    content_view=data.get("content_view"),
                    product=data.get("product"),
                    repository=data.get("repository"),
                    lock=True,
                )
                if s.destination_id == dest.id
            ]
            for sub in _one_by_one(uow, subs):
                if envelope["type"] == ev.BUNDLE_IMPORTED:
                    if sub.content_view:
                        if _is_newer(data.get("version"), sub.acknowledged):  # a late, older answer does not go back
                            sub.acknowledged = data.get("version")
                    else:
                        sub.acknowledged = data["repositories"][0]["package_set_digest"]
                    sub.acknowledged_at = _now()
                    sub.rejections, sub.last_rejection = 0, None
                    if sub.in_flight == sub.acknowledged:
                        sub.in_flight = sub.in_flight_since = None
                        if not sub.content_view or _is_blessed(uow, sub.organization, sub.content_view):
                            result = _next_unless_forbidden(uow, sub, ctx, "next") or result  # the next one, if any
                elif data["reason"] == "base_mismatch":
                    has = data.get("has") or {}
                    if sub.content_view:
                        sub.acknowledged = has.get("content_view_version")
                    else:
                        repos = has.get("repositories") or []
                        sub.acknowledged = repos[0]["package_set_digest"] if repos else None
                    sub.in_flight = sub.in_flight_since = None
                    result = _next_unless_forbidden(uow, sub, ctx, "base_mismatch")
                else:  # reconcile sends it again after the grace time, longer after each failure in a row
                    if data["reason"] != ev.DESTINATION_ERROR:  # the destination failing says nothing of the bundle
                        fanout.retire(uow, data["bundle_id"])
                    sub.in_flight_since = _now()
                    sub.rejections = (sub.rejections or 0) + 1
                    sub.last_rejection = f"{data['reason']}: {data.get('message', '')}"[:1000]
        commit_processed(uow, envelope["id"], "status")
        return result


def _next_unless_forbidden(uow: UnitOfWork, sub: Subscription, ctx: SourceContext, reason: str) -> Propagated | None:
    """After an answer: an export account that may not export must not undo the acknowledgement
    recorded with it (the denial is audited; reconcile tries again once it is granted), nor must an
    online destination that cannot take the next push right now (down, 5xx, a timeout: the push
    puts back its in-flight marker; nothing is in flight, so reconcile pushes it again)."""
    try:
        return propagate(uow, sub, ctx, reason=reason)
    except Forbidden as e:
        log.warning("%s", e.message)
        return None
    except TransientError as e:
        if not (sub.destination.online and sub.destination.url):
            raise
        log.warning("pushing the next bundle to %s failed, reconcile sends it again: %s", sub.destination.name, e)
        return None


def reconcile(
    uow: UnitOfWork, ctx: SourceContext, now: datetime | None = None, *, resend_in_flight: bool = False
) -> list[Propagated]:
    """Re-emit every subscription whose destination is behind with nothing in flight for the grace
    time (longer after refusals in a row; `resend_in_flight`: regardless, e.g. once an admin fixed
    the destination). One transaction per subscription: one that fails (disk full, a broken
    repository) is logged and the others still go out."""
    now = now or _now()
    made: list[Propagated] = []
    with uow:
        ids = list(uow.session.scalars(select(Subscription.id).order_by(Subscription.id)))
    for sub_id in ids:
        try:
            with uow:
                # skip_locked: a subscription a worker is busy with right now is not behind for long
                sub = uow.session.scalar(
                    select(Subscription).where(Subscription.id == sub_id).with_for_update(skip_locked=True)
                )
                if sub is None or (sub.content_view and not _is_blessed(uow, sub.organization, sub.content_view)):
                    continue
                since = sub.in_flight_since
                if since is not None and since.tzinfo is None:
                    since = since.replace(tzinfo=UTC)
                waited = now - since if since else None
                if (
                    sub.in_flight
                    and waited is not None
                    and not resend_in_flight
                    and waited < resend_wait(ctx.grace, sub.rejections or 0)
                ):
                    continue
                sub.in_flight = None  # nothing came back within the grace time: consider it lost
                b = propagate(uow, sub, ctx, reason="reconcile")
                uow.commit()
            if b:
                made.append(b)
        except Exception as e:
            log.warning("reconcile: subscription %s failed: %s", sub_id, e)
    return made


# --- destination: import -------------------------------------------------------------------------


def on_bundle_ready(
    uow: UnitOfWork, envelope: JSONObject, ctx: DestinationContext
) -> importing.ImportSummary | ImportRefused | None:
    """Fetch, verify and import an announced bundle; answer the source from the signed manifest.

    A transient problem (the bundle not there yet, a download error) raises for a retry; any other
    refusal is answered with iss.bundle.rejected.v1 so the source knows."""
    data = envelope["data"]
    if data["destination"] != ctx.server_id:
        return None
    with uow:
        if already_processed(uow.session, envelope["id"], "import"):
            return None
    into = ctx.imports_path / "incoming" / f"{data['bundle_id']}-{uuid.uuid4().hex[:8]}"  # one per delivery
    scope: importing.Scope = "content_view_version" if data.get("content_view") else "repository"
    announced = {
        k: data[k]
        for k in ("bundle_id", "source_server", "content_view", "version", "product", "repository")
        if data.get(k) is not None
    }
    request = importing.ImportRequest(organization=data["organization"], path=into, scope=scope, announced=announced)

    def before_commit(tx: UnitOfWork, summary: importing.ImportSummary) -> None:
        add_event(
            tx.session,
            ev.BUNDLE_IMPORTED,
            _imported_answer(summary, data["organization"], ctx),
            source=ctx.server_id,
            subject=summary["bundle_id"],
            target_server=summary["source_server"],
        )
        mark_processed(tx.session, envelope["id"], "import")
        multihop.announce_imported(tx, summary, ctx.server_id)  # passed on to this server's subscribers

    try:
        # the organization here is what the trusted source maps the bundle's to (checked again on
        # the signed manifest); the import account must hold import_content in it
        request = replace(request, organization=importing.mapped_organization(uow, data["organization"]))
        with uow:
            authorize_account(uow, ctx.actor, policy.IMPORT_CONTENT, request.organization)
        if data.get("stream"):
            return _pull_stream(uow, envelope, request, ctx, before_commit)
        request = replace(
            request,
            path=fetch_bundle(
                data["location"],
                into,
                data.get("size"),
                ctx.fetch_roots,
                sha256=data.get("sha256"),
                authorize=_download_signer(ctx),
            ),
        )
        return importing.import_bundle(
            uow, request, work_dir=ctx.imports_path, actor=ctx.actor, before_commit=before_commit
        )
    except IssError as e:
        if e.transient:
            raise
        _answer_rejected(uow, envelope, request, e, ctx)
        return {"state": "rejected", "reason": ev.rejection_reason(e)}
    finally:
        shutil.rmtree(into, ignore_errors=True)


def _pull_stream(
    uow: UnitOfWork,
    envelope: JSONObject,
    request: importing.ImportRequest,
    ctx: DestinationContext,
    before_commit: Callable[[UnitOfWork, importing.ImportSummary], None],
) -> importing.ImportSummary | None:
    """A stream announced (services/pull_requests.py): pulled like `content-import sync`, only what
    this server lacks, answered like a bundle. A version held already: answered without a byte read."""
    from iss_plugin.adapters.bundles.pull import StreamClient

    data = envelope["data"]
    origin = pull_requests.stream_origin(data["location"])
    content_view = bool(data.get("content_view") and data.get("version"))
    if not content_view and not (data.get("product") and data.get("repository")):
        raise ImportRuleViolation(
            "a stream is announced for a content view version or a repository; this names neither; nothing imported"
        )
    if ctx.signer is None:
        raise IssError("this server has no key to sign its stream request with: run `iss init`")
    announced = {k: v for k, v in (request.announced or {}).items() if k != "bundle_id"}  # its base may differ
    display = f"the stream from {origin}"
    with StreamClient(origin, ctx.signer, ctx.server_id) as client:
        if content_view:
            version = VersionNumber.parse(data["version"])
            wanted = pulling.PullRequest(data["organization"], data["content_view"], version)
            imported = pulling.pull_content_view(
                uow,
                wanted,
                open_stream=client.open,
                work_dir=ctx.imports_path,
                display=display,
                actor=ctx.actor,
                announced=announced,
                before_commit=before_commit,
            )["imported"]
        else:  # the source's version the stream starts from: named by its announcement only
            imported = pulling.pull_repository(
                uow,
                data["organization"],
                data["product"],
                data["repository"],
                pull_requests.stream_base(data["location"]),
                open_stream=client.open,
                work_dir=ctx.imports_path,
                display=display,
                actor=ctx.actor,
                announced=announced,
                before_commit=before_commit,
            )
    if imported is not None:
        return imported
    with uow:
        if content_view:
            answer = {k: data[k] for k in ("bundle_id", "source_server", "organization", "content_view", "version")}
            targets = pull_requests.held_targets(uow, request.organization, data["content_view"], version)
        else:
            answer = {k: data[k] for k in ("bundle_id", "source_server", "organization", "product", "repository")}
            has = importing.destination_holding(uow, request.organization, None, data["product"], data["repository"])
            targets = [dict(r) for r in has["repositories"]] if has else []
        answer |= {"destination": ctx.server_id, "already_imported": True, "repositories": targets}
        add_event(
            uow.session,
            ev.BUNDLE_IMPORTED,
            answer,
            source=ctx.server_id,
            subject=data["bundle_id"],
            target_server=data["source_server"],
        )
        mark_processed(uow.session, envelope["id"], "import")
        uow.commit()
    return None


def _download_signer(ctx: DestinationContext) -> Callable[[str, str], str] | None:
    if ctx.signer is None:
        return None
    from iss_plugin.adapters.bundles.request_signing import authorization

    signer = ctx.signer
    return lambda method, path: authorization(signer, ctx.server_id, method, path)


def _imported_answer(summary: importing.ImportSummary, organization: str, ctx: DestinationContext) -> JSONObject:
    """What the destination now holds, from the verified manifest (never from the event)."""
    answer: JSONObject = {
        "bundle_id": summary["bundle_id"],
        "source_server": summary["source_server"],
        "destination": ctx.server_id,
        "organization": organization,
        "already_imported": summary["state"] == "already_imported",
        "repositories": summary["targets"],
    }
    if summary["content_view"]:
        answer |= {"content_view": summary["content_view"], "version": summary["version"]}
    else:
        answer |= {"product": summary["targets"][0]["product"], "repository": summary["targets"][0]["repository"]}
    return answer


def _answer_rejected(
    uow: UnitOfWork, envelope: JSONObject, request: importing.ImportRequest, e: IssError, ctx: DestinationContext
) -> None:
    data = envelope["data"]
    answer: JSONObject = {
        "bundle_id": data["bundle_id"],
        "source_server": data["source_server"],
        "destination": ctx.server_id,
        "organization": data["organization"],
    }
    answer |= {k: data[k] for k in ("content_view", "version", "product", "repository") if k in data}
    with uow:
        has = importing.destination_holding(
            uow, request.organization, data.get("content_view"), data.get("product"), data.get("repository")
        )
        importing.record_rejection_in(uow, request, e, ctx.actor)
        add_event(
            uow.session,
            ev.BUNDLE_REJECTED,
            answer
            | {
                "reason": ev.rejection_reason(e),
                "message": e.message[:4000],
                "problems": [p[:4000] for p in e.problems[:1000]],
                "has": has,
            },
            source=ctx.server_id,
            subject=data["bundle_id"],
            target_server=data["source_server"],
        )
        mark_processed(uow.session, envelope["id"], "import")
        uow.commit()
