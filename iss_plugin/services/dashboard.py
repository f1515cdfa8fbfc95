"""What the dashboard and /metrics read: pure queries over a unit of work, typed results.

Every function takes `visible`: the organizations the caller may see (None: all of them, from
domain.policy.visible_organizations) and returns only rows of those organizations."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from iss_plugin.adapters.db.models import (
    ContentView,
    Destination,
    ExportRecord,
    ImportRecord,
    Organization,
    OutboxEvent,
    ProcessedEvent,
    Product,
    Repository,
    Subscription,
    TrustedSource,
)
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain.versions import VersionNumber

from . import event_retention

Visible = frozenset[str] | None


def _sees(visible: Visible, organization: str | None) -> bool:
    return visible is None or (organization is not None and organization in visible)


def _aware(t: datetime | None) -> datetime | None:
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


@dataclass(frozen=True)
class Overview:
    server_id: str
    roles: tuple[str, ...]  # "source" (has destinations), "destination" (trusts sources)
    destinations: int
    trusted_sources: int
    outbox_backlog: int  # outbox rows not sent yet
    organizations: tuple[str, ...]


def overview(uow: UnitOfWork, server_id: str, visible: Visible) -> Overview:
    with uow:
        s = uow.session
        destinations = s.scalar(select(func.count()).select_from(Destination)) or 0
        sources = s.scalar(select(func.count()).select_from(TrustedSource)) or 0
        backlog = s.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.sent_at.is_(None))) or 0
        orgs = tuple(o for o in s.scalars(select(Organization.label).order_by(Organization.label)) if _sees(visible, o))
    roles = tuple(r for r, has in (("source", destinations), ("destination", sources)) if has)
    return Overview(server_id, roles, destinations, sources, backlog, orgs)


@dataclass(frozen=True)
class SubscriptionLag:
    destination: str
    server_id: str
    organization: str
    subject: str  # "content view base" or "repository tools/utils"
    acknowledged: str | None
    latest: str | None  # the latest blessed version (content view) or version (repository)
    lag_versions: int | None  # None: unknown
    lag_seconds: float | None  # since the oldest version the destination lacks was made
    in_flight: str | None
    in_flight_since: datetime | None
    rejections: int
    last_rejection: str | None
    online: bool = False  # the destination is pushed to at `url` (no bundle files)
    url: str | None = None


def destinations(uow: UnitOfWork, visible: Visible, now: datetime | None = None) -> list[SubscriptionLag]:
    now = now or datetime.now(UTC)
    with uow:
        subs = uow.session.scalars(select(Subscription).order_by(Subscription.destination_id, Subscription.id))
        return [_lag(uow, sub, now) for sub in subs if _sees(visible, sub.organization)]


def _lag(uow: UnitOfWork, sub: Subscription, now: datetime) -> SubscriptionLag:
    latest: str | None = None
    lag_versions: int | None = None
    lag_seconds: float | None = None
    if sub.content_view:
        subject = f"content view {sub.content_view}"
        versions = _blessed_versions(uow, sub.organization, sub.content_view)
        if versions:
            latest = versions[-1][0]
            missing = [(n, t) for n, t in versions if _newer(n, sub.acknowledged)]
            lag_versions = len(missing)
            created = _aware(missing[0][1]) if missing else None
            lag_seconds = (now - created).total_seconds() if created else 0.0
    else:
        subject = f"repository {sub.product}/{sub.repository}"
        digests = _repository_digests(uow, sub.organization, sub.product, sub.repository)
        if digests:
            latest = f"{digests[-1][0]}"
            held = [i for i, (_, d, _) in enumerate(digests) if d == sub.acknowledged]
            first_missing = held[-1] + 1 if held else 0
            lag_versions = len(digests) - first_missing
            created = _aware(digests[first_missing][2]) if lag_versions else None
            lag_seconds = (now - created).total_seconds() if created else 0.0
    return SubscriptionLag(
        sub.destination.name,
        sub.destination.server_id,
        sub.organization,
        subject,
        sub.acknowledged,
        latest,
        lag_versions,
        lag_seconds,
        sub.in_flight,
        _aware(sub.in_flight_since),
        sub.rejections or 0,
        sub.last_rejection,
        bool(sub.destination.online),
        sub.destination.url,
    )


def _newer(version: str, than: str | None) -> bool:
    if than is None:
        return True
    try:
        return VersionNumber.parse(version) > VersionNumber.parse(than)
    except ValueError:
        return True


def _blessed_versions(uow: UnitOfWork, org: str, cv_label: str) -> list[tuple[str, datetime]]:
    cv = uow.session.scalar(
        select(ContentView).join(Organization).where(Organization.label == org, ContentView.label == cv_label)
    )
    if cv is None or not cv.blessed:
        return []
    ordered = sorted(cv.versions, key=lambda v: (v.major, v.minor))
    return [(v.number, v.created) for v in ordered]


def _repository_digests(uow: UnitOfWork, org: str, product: str, repository: str) -> list[tuple[int, str, datetime]]:
    repo = uow.session.scalar(
        select(Repository)
        .join(Product)
        .join(Organization)
        .where(Organization.label == org, Product.label == product, Repository.label == repository)
    )
    if repo is None:
        return []
    try:
        return [(v.number, v.digest, v.created) for v in uow.backend.list_versions(repo.backend_key)]
    except Exception:  # a backend that does not answer: the page still shows the rest
        return []


@dataclass(frozen=True)
class ContentViewSummary:
    organization: str
    label: str
    name: str
    blessed: bool
    import_only: bool
    repositories: tuple[str, ...]
    versions: tuple[tuple[str, datetime, str | None, int], ...]  # number, created, imported_from, packages


def content_views(uow: UnitOfWork, visible: Visible) -> list[ContentViewSummary]:
    with uow:
        views = uow.session.scalars(
            select(ContentView).join(Organization).order_by(Organization.label, ContentView.label)
        )
        out = []
        for cv in views:
            if not _sees(visible, cv.organization.label):
                continue
            versions = tuple(
                (v.number, v.created, v.imported_from, sum(r.package_count for r in v.repositories))
                for v in sorted(cv.versions, key=lambda v: (v.major, v.minor), reverse=True)
            )
            repos = tuple(f"{r.product.label}/{r.label}" for r in cv.repositories)
            out.append(
                ContentViewSummary(
                    cv.organization.label, cv.label, cv.name, cv.blessed, cv.import_only, repos, versions
                )
            )
        return out


@dataclass(frozen=True)
class RepositorySummary:
    organization: str
    product: str
    product_name: str
    redhat: bool
    label: str
    name: str
    content_type: str
    versions: tuple[tuple[int, int, str], ...]  # number, package count, digest (newest first)


def repositories(uow: UnitOfWork, visible: Visible) -> list[RepositorySummary]:
    with uow:
        repos = uow.session.scalars(
            select(Repository)
            .join(Product)
            .join(Organization)
            .order_by(Organization.label, Product.label, Repository.label)
        )
        out = []
        for r in repos:
            org = r.product.organization.label
            if not _sees(visible, org):
                continue
            try:
                versions = tuple(
                    (v.number, v.package_count, v.digest) for v in reversed(uow.backend.list_versions(r.backend_key))
                )
            except Exception:  # a backend that does not answer: the page still shows the rest
                versions = ()
            out.append(
                RepositorySummary(
                    org, r.product.label, r.product.name, r.product.redhat, r.label, r.name, r.content_type, versions
                )
            )
        return out


@dataclass(frozen=True)
class OutboxRow:
    event_id: str
    type: str
    organization: str | None
    routing_key: str
    created: datetime
    sent_at: datetime | None

    @property
    def status(self) -> str:
        return "sent" if self.sent_at else "pending"


@dataclass(frozen=True)
class ProcessedRow:
    event_id: str
    consumer: str
    at: datetime


@dataclass(frozen=True)
class Events:
    outgoing: list[OutboxRow]
    incoming: list[ProcessedRow]
    types: tuple[str, ...]


def _organization_of(body: object) -> str | None:
    data = body.get("data") if isinstance(body, dict) else None
    org = data.get("organization") if isinstance(data, dict) else None
    return org if isinstance(org, str) else None


def events(
    uow: UnitOfWork,
    visible: Visible,
    *,
    event_type: str | None = None,
    organization: str | None = None,
    limit: int = 200,
) -> Events:
    """Recent outbox rows (out) and processed events (in), newest first. Processed events carry no
    organization: a caller who cannot see every organization sees only the outgoing side."""
    with uow:
        s = uow.session
        types = tuple(s.scalars(select(OutboxEvent.type).distinct().order_by(OutboxEvent.type)))
        q = select(OutboxEvent).order_by(OutboxEvent.id.desc())
        if event_type:
            q = q.where(OutboxEvent.type == event_type)
        outgoing: list[OutboxRow] = []
        for row in s.scalars(q.limit(limit * 5)):
            org = _organization_of(row.body)
            if not _sees(visible, org) or (organization and org != organization):
                continue
            outgoing.append(OutboxRow(row.event_id, row.type, org, row.routing_key, row.created, row.sent_at))
            if len(outgoing) >= limit:
                break
        incoming: list[ProcessedRow] = []
        if visible is None and not organization and not event_type:
            done = s.scalars(select(ProcessedEvent).order_by(ProcessedEvent.at.desc()).limit(limit))
            incoming = [ProcessedRow(p.event_id, p.consumer, p.at) for p in done]
        return Events(outgoing, incoming, types)


@dataclass(frozen=True)
class Transfer:
    direction: str  # export | import
    bundle_id: str | None
    organization: str
    subject: str
    kind: str | None
    format: str | None
    destination: str | None  # export: the destination; import: the source server
    state: str
    error: str | None
    created: datetime
    seconds: float | None
    size: int | None  # bytes on disk now (None: gone or unknown)


def transfers(uow: UnitOfWork, visible: Visible, limit: int = 200) -> list[Transfer]:
    with uow:
        s = uow.session
        out = [
            _export_row(r)
            for r in s.scalars(select(ExportRecord).order_by(ExportRecord.id.desc()).limit(limit))
            if _sees(visible, r.organization)
        ]
        out += [
            _import_row(r)
            for r in s.scalars(select(ImportRecord).order_by(ImportRecord.id.desc()).limit(limit))
            if _sees(visible, r.organization)
        ]
    return sorted(out, key=lambda t: _aware(t.created) or datetime.min.replace(tzinfo=UTC), reverse=True)


def _subject(content_view: str | None, version: str | None, product: str | None, repository: str | None) -> str:
    if content_view:
        return f"{content_view} {version or ''}".strip()
    return f"{product}/{repository}" if repository else "-"


def _export_row(r: ExportRecord) -> Transfer:
    created, finished = _aware(r.created), _aware(r.finished)
    seconds = (finished - created).total_seconds() if created and finished else None
    return Transfer(
        "export",
        r.bundle_id,
        r.organization,
        _subject(r.content_view, r.version, r.product, r.repository),
        r.kind,
        r.format,
        r.destination,
        r.state,
        r.error,
        r.created,
        seconds,
        bundle_size(r.path),
    )


def _import_row(r: ImportRecord) -> Transfer:
    return Transfer(
        "import",
        r.bundle_id,
        r.organization,
        _subject(r.content_view, r.version, None, None),
        r.kind,
        None,
        r.source_server,
        r.state,
        r.error or r.reason,
        r.created,
        None,
        bundle_size(r.path),
    )


def bundle_size(path: str | None) -> int | None:
    """Bytes of a bundle on disk: a file, a directory tree, or chunks `<path>.000`, ...; None if gone."""
    if not path:
        return None
    p = Path(path)
    try:
        if p.is_file():
            return p.stat().st_size
        if p.is_dir():
            return sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())
        chunks = sorted(p.parent.glob(p.name + ".[0-9][0-9][0-9]"))
        return sum(c.stat().st_size for c in chunks) if chunks else None
    except OSError:
        return None


@dataclass(frozen=True)
class EventCount:
    type: str
    outcome: str  # "sent" | "pending" (out), "processed" (in, by consumer)
    count: int


def event_counts(uow: UnitOfWork) -> list[EventCount]:
    """For /metrics: outbox rows by type and sent/pending, processed events by consumer. Sent and
    processed include the rows event retention deleted, so they never go down."""
    with uow:
        s = uow.session
        sent = OutboxEvent.sent_at.is_not(None)
        counts = event_retention.pruned_counts(s)
        rows = s.execute(select(OutboxEvent.type, sent, func.count()).group_by(OutboxEvent.type, sent)).all()
        for t, is_sent, n in rows:
            key = (t, "sent" if is_sent else "pending")
            counts[key] = counts.get(key, 0) + n
        done = s.execute(select(ProcessedEvent.consumer, func.count()).group_by(ProcessedEvent.consumer)).all()
        for c, n in done:
            counts[(c, "processed")] = counts.get((c, "processed"), 0) + n
        return [EventCount(name, outcome, n) for (name, outcome), n in sorted(counts.items())]


def lag_per_destination(lags: Iterable[SubscriptionLag]) -> dict[str, tuple[int, float]]:
    """destination -> (largest lag in versions, largest lag in seconds) over its subscriptions."""
    out: dict[str, tuple[int, float]] = {}
    for lag in lags:
        versions, seconds = out.get(lag.destination, (0, 0.0))
        out[lag.destination] = (max(versions, lag.lag_versions or 0), max(seconds, lag.lag_seconds or 0.0))
    return out
