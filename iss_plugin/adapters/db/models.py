"""SQLAlchemy 2.0 typed models for docs/architecture.md §2, plus the local store's tables."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from schemas import JSONObject


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Organization(Base):
    __tablename__ = "organizations"
    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    cdn_url: Mapped[str | None] = mapped_column(Text, nullable=True)  # iss organization set-cdn
    products: Mapped[list[Product]] = relationship(back_populates="organization", order_by="Product.label")


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (UniqueConstraint("organization_id", "label"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(255))
    redhat: Mapped[bool] = mapped_column(Boolean, default=False)
    content_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # cp_id of a Red Hat product
    sync_url_override: Mapped[str | None] = mapped_column(Text, nullable=True)  # base URL + each repository's label
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    gpg_key: Mapped[str | None] = mapped_column(Text, nullable=True)  # ASCII-armored public key (migration 0007)
    gpg_key_fingerprints: Mapped[str | None] = mapped_column(Text, nullable=True)  # space-separated, sorted
    organization: Mapped[Organization] = relationship(back_populates="products")
    repositories: Mapped[list[Repository]] = relationship(back_populates="product", order_by="Repository.label")


class Repository(Base):
    __tablename__ = "repositories"
    __table_args__ = (UniqueConstraint("product_id", "label"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(32), default="yum")
    upstream_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    sync_url_override: Mapped[str | None] = mapped_column(Text, nullable=True)
    temporary_sync_url_override: Mapped[str | None] = mapped_column(Text, nullable=True)
    backend_key: Mapped[str] = mapped_column(String(400), unique=True)  # org/product/repo
    published_at: Mapped[str | None] = mapped_column(Text, nullable=True)
    announced_version: Mapped[int | None] = mapped_column(Integer, nullable=True)  # see producers/repository_watcher
    product: Mapped[Product] = relationship(back_populates="repositories")


class ContentView(Base):
    __tablename__ = "content_views"
    __table_args__ = (UniqueConstraint("organization_id", "label"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(255))
    blessed: Mapped[bool] = mapped_column(Boolean, default=False)
    import_only: Mapped[bool] = mapped_column(Boolean, default=False)
    composite: Mapped[bool] = mapped_column(Boolean, default=False)
    organization: Mapped[Organization] = relationship()
    repositories: Mapped[list[Repository]] = relationship(secondary="content_view_repositories")
    versions: Mapped[list[ContentViewVersion]] = relationship(
        back_populates="content_view", order_by="(ContentViewVersion.major, ContentViewVersion.minor)"
    )


class ContentViewRepository(Base):
    __tablename__ = "content_view_repositories"
    content_view_id: Mapped[int] = mapped_column(ForeignKey("content_views.id", ondelete="CASCADE"), primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True)


class ContentViewVersion(Base):
    __tablename__ = "content_view_versions"
    __table_args__ = (UniqueConstraint("content_view_id", "major", "minor"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    content_view_id: Mapped[int] = mapped_column(ForeignKey("content_views.id", ondelete="CASCADE"))
    major: Mapped[int] = mapped_column(Integer)
    minor: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    imported_from: Mapped[str | None] = mapped_column(String(255), nullable=True)  # source server id
    content_view: Mapped[ContentView] = relationship(back_populates="versions")
    repositories: Mapped[list[ContentViewVersionRepository]] = relationship(
        back_populates="content_view_version", cascade="all, delete-orphan"
    )

    @property
    def number(self) -> str:
        return f"{self.major}.{self.minor}"


class ContentViewVersionRepository(Base):
    """The exact repository version a content view version pins."""

    __tablename__ = "content_view_version_repositories"
    id: Mapped[int] = mapped_column(primary_key=True)
    content_view_version_id: Mapped[int] = mapped_column(ForeignKey("content_view_versions.id", ondelete="CASCADE"))
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    backend_version: Mapped[int] = mapped_column(Integer)
    package_count: Mapped[int] = mapped_column(Integer)
    package_set_digest: Mapped[str] = mapped_column(String(80))
    content_view_version: Mapped[ContentViewVersion] = relationship(back_populates="repositories")
    repository: Mapped[Repository] = relationship()


class Destination(Base):
    __tablename__ = "destinations"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    server_id: Mapped[str] = mapped_column(String(128), unique=True)
    public_key: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # online: the export consumer pushes each bundle's stream to <url>/api/v1/imports/push (no file)
    online: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    url: Mapped[str | None] = mapped_column(String(1024), nullable=True)


class Subscription(Base):
    """A destination's subscription to a content view or a repository (by labels)."""

    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("destination_id", "organization", "content_view", "product", "repository"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    destination_id: Mapped[int] = mapped_column(ForeignKey("destinations.id", ondelete="CASCADE"))
    organization: Mapped[str] = mapped_column(String(128))
    content_view: Mapped[str] = mapped_column(String(128), default="")
    product: Mapped[str] = mapped_column(String(128), default="")
    repository: Mapped[str] = mapped_column(String(128), default="")
    acknowledged: Mapped[str | None] = mapped_column(String(80), nullable=True)  # version or digest it holds
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    in_flight: Mapped[str | None] = mapped_column(String(80), nullable=True)
    in_flight_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # refusals in a row (not base mismatches) and the last one's reason: reconcile waits longer each time
    rejections: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_rejection: Mapped[str | None] = mapped_column(Text, nullable=True)
    destination: Mapped[Destination] = relationship()


class TrustedSource(Base):
    __tablename__ = "trusted_sources"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    public_key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(80), unique=True)
    # {source organization: destination organization} it may feed (a list of labels before 0005)
    organizations: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # the source's iss server id (export requests are addressed to it); null: `name` (migration 0011)
    server_id: Mapped[str | None] = mapped_column(String(128), nullable=True, default=None)

    @property
    def address(self) -> str:
        """The server id a request to this source is addressed to."""
        return self.server_id or self.name


class Entitlement(Base):
    """One Red Hat product an organization's entitlement manifest grants."""

    __tablename__ = "entitlements"
    __table_args__ = (UniqueConstraint("organization_id", "content_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    content_id: Mapped[str] = mapped_column(String(64))
    product_label: Mapped[str] = mapped_column(String(128))
    product_name: Mapped[str] = mapped_column(String(255))
    manifest_id: Mapped[str] = mapped_column(String(128))
    imported: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ExportRecord(Base):
    __tablename__ = "exports"
    id: Mapped[int] = mapped_column(primary_key=True)
    bundle_id: Mapped[str] = mapped_column(String(64), unique=True)
    organization: Mapped[str] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(String(32))
    content_view: Mapped[str | None] = mapped_column(String(128), nullable=True)
    version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    product: Mapped[str | None] = mapped_column(String(128), nullable=True)
    repository: Mapped[str | None] = mapped_column(String(128), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))
    base: Mapped[str | None] = mapped_column(String(80), nullable=True)
    destination: Mapped[str | None] = mapped_column(String(128), nullable=True)
    format: Mapped[str] = mapped_column(String(16))
    path: Mapped[str | None] = mapped_column(Text, nullable=True)
    state: Mapped[str] = mapped_column(String(16))  # running | done | failed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    summary: Mapped[JSONObject] = mapped_column(JSON, default=dict)  # per repository: target digest, versions
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ImportRecord(Base):
    __tablename__ = "imports"
    id: Mapped[int] = mapped_column(primary_key=True)
    bundle_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    source_server: Mapped[str | None] = mapped_column(String(128), nullable=True)
    organization: Mapped[str] = mapped_column(String(128))
    content_view: Mapped[str | None] = mapped_column(String(128), nullable=True)
    version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    path: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(24))  # imported | already_imported | rejected | failed | dry_run
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditLog(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(Text)
    details: Mapped[JSONObject] = mapped_column(JSON, default=dict)
    organization: Mapped[str | None] = mapped_column(String(128), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16), default="success")  # success | denied | failed | rejected


class OutboxEvent(Base):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_unsent", "sent_at", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(128))
    routing_key: Mapped[str] = mapped_column(String(255))
    body: Mapped[JSONObject] = mapped_column(JSON)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ProcessedEvent(Base):
    __tablename__ = "processed_events"
    __table_args__ = (Index("ix_processed_events_at", "at"),)  # retention and the Events page
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PrunedEventCount(Base):
    """Outbox rows and processed markers removed by retention, counted so that /metrics' event
    counters keep growing after their rows are gone. name: the event type (outcome "sent") or the
    consumer (outcome "processed")."""

    __tablename__ = "pruned_event_counts"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


# --- the local content store (backend "local") -------------------------------------------------


class StorePackage(Base):
    """A package file held once in the content-addressed store, with its yum metadata chunks."""

    __tablename__ = "store_packages"
    __table_args__ = (Index("ix_store_packages_location", "location"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    epoch: Mapped[str] = mapped_column(String(16))
    version: Mapped[str] = mapped_column(String(255))
    release: Mapped[str] = mapped_column(String(255))
    arch: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(BigInteger)
    location: Mapped[str] = mapped_column(Text)
    primary_xml: Mapped[str] = mapped_column(Text)
    filelists_xml: Mapped[str] = mapped_column(Text)
    other_xml: Mapped[str] = mapped_column(Text)


class StoreRepository(Base):
    __tablename__ = "store_repositories"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(400), unique=True)
    content_type: Mapped[str] = mapped_column(String(32), default="yum")
    latest_version: Mapped[int] = mapped_column(Integer, default=0)


class StoreRepositoryVersion(Base):
    __tablename__ = "store_repository_versions"
    __table_args__ = (UniqueConstraint("repository_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("store_repositories.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    package_count: Mapped[int] = mapped_column(Integer, default=0)
    digest: Mapped[str] = mapped_column(String(80))  # the package set digest (domain.packages)
    # digest of its metadata units (store_unit_models), None without any: see domain.content_units
    units_digest: Mapped[str | None] = mapped_column(String(80), nullable=True)


class StoreRepositoryContent(Base):
    """Membership ranges as in Pulp: a package is in versions [version_added, version_removed)."""

    __tablename__ = "store_repository_content"
    __table_args__ = (Index("ix_store_content_repo", "repository_id", "version_removed"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("store_repositories.id", ondelete="CASCADE"))
    package_id: Mapped[int] = mapped_column(ForeignKey("store_packages.id"))
    version_added: Mapped[int] = mapped_column(Integer)
    version_removed: Mapped[int | None] = mapped_column(Integer, nullable=True)
