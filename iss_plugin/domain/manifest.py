"""The bundle manifest as values (schemas/bundle/manifest.v1.json is its wire form)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from .jsontypes import JSONObject

FORMAT = "iss-bundle/1"
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.json.sig"
PRODUCTS_CSV = "products.csv"

Kind = Literal["full", "incremental"]
Scope = Literal["content_view_version", "repository"]


@dataclass(frozen=True)
class VersionRef:
    """A repository version as the source knows it: its number there, and what it holds."""

    version: int
    package_count: int
    package_set_digest: str


@dataclass(frozen=True)
class ProductEntry:
    label: str
    name: str
    redhat: bool
    content_id: str | None = None
    gpg_key: str | None = None  # ASCII-armored public key the product's packages are signed with


@dataclass(frozen=True)
class UnitSummary:
    """A target's metadata units (domain.content_units): how many of each kind, how many of each the
    base lacks, and the digest over them all. The units themselves travel in the full repodata."""

    counts: dict[str, int]
    added: dict[str, int]
    digest: str


@dataclass(frozen=True)
class RepositoryEntry:
    label: str
    name: str
    product: str  # product label
    path: str  # repos/<product>/<repository>
    content_type: str
    target: VersionRef
    base: VersionRef | None = None
    added: int = 0
    removed: tuple[str, ...] = ()  # sha256 of base packages the target no longer has
    units: UnitSummary | None = None  # the target's metadata units; None: none (older bundles too)


@dataclass(frozen=True, slots=True)
class FileEntry:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class ContentViewRef:
    label: str
    name: str
    version: str  # major.minor


@dataclass(frozen=True)
class BundleManifest:
    bundle_id: str
    source_server: str
    source_key_fingerprint: str
    created: str
    organization: str
    scope: Scope
    kind: Kind
    content_view: ContentViewRef | None
    base_content_view_version: str | None
    products: tuple[ProductEntry, ...]
    repositories: tuple[RepositoryEntry, ...]
    files: tuple[FileEntry, ...]
    destination: str | None = None
    format: str = FORMAT
    extra: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> JSONObject:
        d = asdict(self)
        for r in d["repositories"]:
            r["removed"] = list(r["removed"])
            if r["units"] is None:
                del r["units"]  # optional in iss-bundle/1: absent unless the target has units
        d["products"] = [{k: v for k, v in p.items() if k != "gpg_key" or v} for p in d["products"]]
        d["repositories"] = list(d["repositories"])
        d["files"] = list(d["files"])
        return d

    @classmethod
    def from_dict(cls, d: JSONObject) -> BundleManifest:
        def ref(x: JSONObject | None) -> VersionRef | None:
            return VersionRef(**x) if x else None

        cv = d.get("content_view")
        return cls(
            bundle_id=d["bundle_id"],
            source_server=d["source_server"],
            source_key_fingerprint=d["source_key_fingerprint"],
            created=d["created"],
            organization=d["organization"],
            scope=d["scope"],
            kind=d["kind"],
            content_view=ContentViewRef(**cv) if cv else None,
            base_content_view_version=d.get("base_content_view_version"),
            products=tuple(ProductEntry(**p) for p in d["products"]),
            repositories=tuple(
                RepositoryEntry(
                    **{
                        **r,
                        "target": ref(r["target"]),
                        "base": ref(r.get("base")),
                        "removed": tuple(r.get("removed", ())),
                        "units": UnitSummary(**r["units"]) if r.get("units") else None,
                    }
                )
                for r in d["repositories"]
            ),
            files=tuple(f if isinstance(f, FileEntry) else FileEntry(**f) for f in d["files"]),
            destination=d.get("destination"),
            format=d.get("format", FORMAT),
            extra=d.get("extra", {}),
        )

    def product(self, label: str) -> ProductEntry:
        return next(p for p in self.products if p.label == label)
