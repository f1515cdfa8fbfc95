"""The Pulp content backend (DESIGN.md section 5, "pulp"): Pulp 3 + pulp_rpm through pulp-glue.

- A repository key "org/product/repo" is the Pulp rpm repository named `<prefix><key>` (the key as
  it is: labels cannot hold "/", so the name maps back to the key). Its remote and its
  distribution carry the same name. Pulp's version numbers are the backend's version numbers.
- Package sets: a version's set is its predecessor's plus what Pulp says it added, minus what it
  removed (`repository_version_added/removed` filters), so listing the versions of a repository
  costs requests in proportion to the changes; versions are immutable, the sets are cached per
  process.
- Writes converge: read the current state, then create or update only what differs. Uploading
  packages Pulp already holds, or making a version equal to the latest, changes nothing.
- Export: a publication of the version (reused when one exists) written by Pulp's filesystem
  exporter (hardlinks when on one filesystem) into the shared export directory, with
  `start_repository_version` for incremental trees (full metadata, only the new package files),
  then moved into the caller's directory.
- Import: the tree is checked (files, paths, listed packages and their digest against the
  expectation) before Pulp sees it. Packages the tree lists but neither carries nor Pulp holds are
  a base mismatch. Up to MODIFY_IMPORT_LIMIT new package files (and package metadata only), the
  new files go into Pulp (uploads, or for many one sync into the repository's incoming
  repository) and ONE modify task makes the new version: the cost follows the change. Larger
  changes, or trees with errata/comps/modules, are applied by a mirror sync of the tree,
  hardlinked into the shared import directory (Pulp reads only under ALLOWED_IMPORT_PATHS); Pulp
  does not fetch packages it already holds. The resulting version must have the expected digest;
  otherwise it is deleted.
- A content view publish calls prepare_export: the publication the filesystem exporter needs is
  made then (as Katello publishes a content view version), not during the export.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from iss_plugin.adapters.backends.base import (
    ExportedTree,
    ImportExpectation,
    VersionChanges,
    VersionInfo,
    clear_export_dir,
    prepare_export_dir,
)
from iss_plugin.adapters.backends.pulp_client import PulpConnection, PulpSession
from iss_plugin.adapters.backends.pulp_tree import link_or_copy_tree, repomd_types, write_repo_around
from iss_plugin.domain.errors import BackendError, BaseMismatch, BundleIntegrityError, ConfigError, NotFound, UsageError
from iss_plugin.domain.labels import check_label
from iss_plugin.domain.manifest import FileEntry
from iss_plugin.domain.packages import Package, package_set_digest, standard_location

log = logging.getLogger(__name__)

PACKAGE_FIELDS = [
    "pulp_href",
    "name",
    "epoch",
    "version",
    "release",
    "arch",
    "pkgId",
    "checksum_type",
    "sha256",
    "size_package",
    "location_href",
]
SET_FIELDS = ["pulp_href", "pkgId", "checksum_type", "sha256", "location_href"]
HREF_BATCH = 40  # content hrefs per `pulp_href__in` query (same limit)
IN_BATCH = 50  # checksums per `pkgId__in` query: gunicorn refuses request lines over 4094 bytes
UPLOAD_THREADS = 4
BULK_UPLOAD = 20  # from this many files to upload, one sync of a yum tree around them beats one request each
MODIFY_IMPORT_LIMIT = 200  # up to this many new package files, an import is uploads + one modify (follows the change)
INCOMING = "#incoming"  # suffix of the per-repository incoming repository (see _send_files)
PACKAGE_METADATA = {"primary", "filelists", "other", "primary_db", "filelists_db", "other_db"}
REPODATA = "repodata"

_SESSIONS: dict[tuple[str, str, str], PulpSession] = {}
_SESSIONS_LOCK = threading.Lock()


class _SetCache:
    """Package sets of repository versions by (Pulp URL, version href): versions never change."""

    def __init__(self, size: int = 256):
        self.size = size
        self._d: OrderedDict[tuple[str, str], dict[str, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> dict[str, str] | None:
        with self._lock:
            v = self._d.get(key)
            if v is not None:
                self._d.move_to_end(key)
            return v

    def drop(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._d.pop(key, None)

    def put(self, key: tuple[str, str], value: dict[str, str]) -> None:
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.size:
                self._d.popitem(last=False)


_SETS = _SetCache()
# content href -> its file name: content never changes, so this is filled by every set query and
# lets an export name each package file's sha256 without listing the version again
_FILENAMES: dict[tuple[str, str], str] = {}
_FILENAMES_MAX = 500_000


def _remember_filename(url: str, e: dict) -> None:
    if len(_FILENAMES) > _FILENAMES_MAX:
        _FILENAMES.clear()
    if e.get("location_href"):
        _FILENAMES[(url, e["pulp_href"])] = e["location_href"].rsplit("/", 1)[-1]


@dataclass(frozen=True)
class RepositoryChange:
    """A repository version Pulp created (by iss or anyone else), for the repository watcher."""

    repo: str
    version: int
    created: datetime


def _utc(text: str) -> datetime:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _sha_of(entity: dict) -> str:
    sha = entity.get("sha256")
    if not sha and (entity.get("checksum_type") or "").lower() == "sha256":
        sha = entity.get("pkgId")
    if not sha:
        raise BackendError(f"Pulp package {entity.get('pulp_href')} has no sha256 (on-demand content is not supported)")
    return sha.lower()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _batched(seq: Sequence, n: int) -> Iterable[Sequence]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


class PulpBackend:
    """ContentBackend over a Pulp 3 server with pulp_rpm."""

    name = "pulp"

    def __init__(
        self,
        session: PulpSession,
        *,
        shared_export_dir: Path | None,
        shared_import_dir: Path | None,
        repo_prefix: str = "",
        upload_threads: int = UPLOAD_THREADS,
        bulk_upload: int = BULK_UPLOAD,
        modify_import_limit: int = MODIFY_IMPORT_LIMIT,
        remote_options: dict | None = None,
    ):
        self.pulp = session
        self.shared_export_dir = Path(shared_export_dir) if shared_export_dir else None
        self.shared_import_dir = Path(shared_import_dir) if shared_import_dir else None
        self.repo_prefix = repo_prefix
        self.upload_threads = upload_threads
        self.bulk_upload = bulk_upload
        self.modify_import_limit = modify_import_limit
        self.remote_options = dict(remote_options or {})  # e.g. {"max_retries": 0}: more remote settings
        self._repos: dict[str, dict] = {}

    @classmethod
    def from_settings(cls, settings, **kwargs) -> PulpBackend:
        p = settings.pulp
        if p.password is not None:
            password = p.password
        elif p.password_file is not None:
            try:
                password = Path(p.password_file).read_text().strip()
            except OSError as e:
                raise ConfigError(f"pulp.password_file {p.password_file} cannot be read: {e.strerror}") from None
        else:
            raise ConfigError("the pulp backend needs pulp.password or pulp.password_file (ISS_PULP__PASSWORD_FILE)")
        return cls(
            session_for(PulpConnection(p.url, p.username, password, p.timeout_seconds)),
            shared_export_dir=p.shared_export_dir,
            shared_import_dir=p.shared_import_dir,
            **{"repo_prefix": p.repo_prefix, **kwargs},
        )

    # === naming ===================================================================================
    def pulp_name(self, repo: str) -> str:
        for part in repo.split("/"):
            check_label(part, what=f"repository key part '{part}' of '{repo}'")
        return f"{self.repo_prefix}{repo}"

    def key_of(self, pulp_name: str) -> str | None:
        """The key a Pulp repository name stands for; None for names iss did not make for a key
        (another prefix, or an incoming repository: labels hold no '#')."""
        if not pulp_name.startswith(self.repo_prefix):
            return None
        key = pulp_name[len(self.repo_prefix) :]
        try:
            self.pulp_name(key)
        except UsageError:
            return None
        return key

    def incoming_name(self, repo: str) -> str:
        """The repository that receives a large batch of new package files for `repo` by one sync."""
        return f"{self.pulp_name(repo)}{INCOMING}"

    # === repositories and versions ================================================================
    def ensure_repository(self, repo: str, content_type: str = "yum") -> None:
        if content_type != "yum":
            raise BackendError(f"the pulp backend holds yum repositories only, not '{content_type}'")
        self._ensure_named(self.pulp_name(repo), {"description": f"iss repository {repo}"})

    def _ensure_named(self, name: str, body: dict) -> dict:
        found = self._find_repo(name)
        if found is not None:
            return found
        try:
            entity = self.pulp.call(
                "repositories_rpm_rpm_create", f"creating repository '{name}'", body={"name": name, **body}
            )
        except BackendError as e:
            found = self._find_repo(name) if "unique" in str(e).lower() else None
            if found is not None:  # created meanwhile
                return found
            raise
        self._repos[name] = entity
        return entity

    def latest_version(self, repo: str) -> int:
        return self._version_number(self._repo(repo, fresh=True)["latest_version_href"])

    def list_versions(self, repo: str) -> list[VersionInfo]:
        r = self._repo(repo, fresh=True)
        out = []
        for v, shas in self._walk_versions(r):
            out.append(VersionInfo(v["number"], _utc(v["pulp_created"]), len(shas), package_set_digest(shas)))
        return out

    def version_info(self, repo: str, version: int) -> VersionInfo:
        href = self._version_href(repo, version)
        v = self.pulp.call(
            "repositories_rpm_rpm_versions_read",
            f"reading '{repo}' version {version}",
            parameters={"rpm_rpm_repository_version_href": href, "fields": ["pulp_created"]},
        )
        shas = self._version_set(href)
        return VersionInfo(version, _utc(v["pulp_created"]), len(shas), package_set_digest(shas))

    def version_changes(self, repo: str, base_version: int | None, version: int) -> VersionChanges:
        """What `version` adds to `base_version` and drops from it, from the cached version sets: only
        the added packages are read in full (the cost of the change)."""
        target = self._version_set(self._version_href(repo, version))
        base = self._version_set(self._version_href(repo, base_version)) if base_version is not None else {}
        added_hrefs = [href for sha, href in target.items() if sha not in base]
        added = []
        for batch in _batched(added_hrefs, HREF_BATCH):
            added.extend(
                self._package(e)
                for e in self.pulp.list(
                    "content_rpm_packages_list",
                    f"reading the packages '{repo}' version {version} adds",
                    {"pulp_href__in": list(batch), "fields": PACKAGE_FIELDS},
                )
            )
        return VersionChanges(
            sorted(added, key=lambda p: (p.location, p.sha256)), sorted(sha for sha in base if sha not in target)
        )

    def list_packages(self, repo: str, version: int) -> list[Package]:
        href = self._version_href(repo, version)
        pkgs = [
            self._package(e)
            for e in self.pulp.list(
                "content_rpm_packages_list",
                f"listing packages of '{repo}' version {version}",
                {"repository_version": href, "fields": PACKAGE_FIELDS},
            )
        ]
        return sorted(pkgs, key=lambda p: (p.location, p.sha256))

    # === writes =====================================================================================
    def add_packages(self, repo: str, files: Sequence[Path]) -> int:
        r = self._repo(repo, fresh=True)
        files = [Path(f) for f in files]
        problems = [f"{f}: no such file" for f in files if not f.is_file()]
        if problems:
            raise BackendError(f"{len(problems)} of {len(files)} files cannot be read; nothing was added", problems)
        shas = [file_sha256(f) for f in files]
        current = self._version_set(r["latest_version_href"])
        wanted = {sha: f for sha, f in zip(shas, files, strict=False) if sha not in current}
        if not wanted:
            return self._version_number(r["latest_version_href"])
        hrefs = self._content_by_sha(list(wanted))
        missing = [(sha, f) for sha, f in wanted.items() if sha not in hrefs]
        if len(missing) >= self.bulk_upload and self.shared_import_dir is not None:
            return self._bulk_add(repo, r, wanted, len(files))
        uploaded, problems = self._upload(missing)
        if problems:
            raise BackendError(
                f"{len(problems)} of {len(files)} packages could not be uploaded to Pulp; '{repo}' is unchanged",
                problems,
            )
        hrefs.update(uploaded)
        return self._modify(r, add=[hrefs[sha] for sha in wanted], doing=f"adding {len(wanted)} packages to '{repo}'")

    def _bulk_add(self, repo: str, r: dict, wanted: dict[str, Path], total: int) -> int:
        """Many new packages: a yum tree around them in the shared import directory, one additive
        sync (one Pulp task; packages Pulp holds already are not read again)."""
        problems, version = self._sync_around(
            r, list(wanted.values()), tag="upload", mirror=False, what=f"{len(wanted)} uploaded packages"
        )
        if problems:
            raise BackendError(
                f"{len(problems)} of {total} packages could not be uploaded to Pulp; '{repo}' is unchanged", problems
            )
        got = self._version_set(self._version_href(repo, version))
        lost = [f.name for sha, f in wanted.items() if sha not in got]
        if lost:
            raise BackendError(f"Pulp's sync of the uploaded packages left out {len(lost)} of them", lost[:20])
        return version

    def remove_packages(self, repo: str, sha256s: Iterable[str]) -> int:
        r = self._repo(repo, fresh=True)
        current = self._version_set(r["latest_version_href"])
        gone = [current[s.lower()] for s in set(sha256s) if s.lower() in current]
        if not gone:
            return self._version_number(r["latest_version_href"])
        return self._modify(r, remove=gone, doing=f"removing {len(gone)} packages from '{repo}'")

    def sync(self, repo: str, url: str, *, mirror: bool = True) -> int:
        r = self._repo(repo, fresh=True)
        parts = urlsplit(url)
        if parts.scheme == "file":
            local = Path(unquote(parts.path))
            if not local.is_dir():
                raise BackendError(f"cannot sync '{repo}' from {url}: {local} is not a directory")
            with self._staged(local) as staged:
                return self._sync_from(r, staged.as_uri() + "/", mirror=mirror, what=url)
        if parts.scheme not in ("http", "https"):
            raise UsageError(f"cannot sync from {url}: use a file://, http:// or https:// URL")
        return self._sync_from(r, url, mirror=mirror, what=url)

    # === export ===================================================================================
    def export_version(self, repo: str, version: int, base_version: int | None, dest: Path) -> ExportedTree:
        dest = Path(dest)
        created = prepare_export_dir(dest)
        try:
            return self._export(repo, version, base_version, dest)
        except BaseException:
            clear_export_dir(dest, remove_self=created)
            raise

    def prepare_export(self, repo: str, version: int) -> None:
        """The publication the filesystem exporter writes (called when a content view version is
        published, as Katello publishes then; an export reuses it)."""
        self._publication(self._version_href(repo, version), f"'{repo}' version {version}")

    def _export(self, repo: str, version: int, base_version: int | None, dest: Path) -> ExportedTree:
        if self.shared_export_dir is None:
            raise ConfigError(
                "the pulp backend needs pulp.shared_export_dir (under Pulp's ALLOWED_EXPORT_PATHS) to export"
            )
        href = self._version_href(repo, version)
        base_href = self._version_href(repo, base_version) if base_version is not None else None
        publication = self._publication(href, f"'{repo}' version {version}")
        token = uuid.uuid4().hex
        out = self.shared_export_dir / f"iss-export-{token}"
        exporter = self.pulp.call(
            "exporters_core_filesystem_create",
            "creating a filesystem exporter",
            body={"name": f"iss-export-{token}", "path": str(out), "method": "hardlink"},
        )
        try:
            body = {"publication": publication}
            if base_href:
                body["start_repository_version"] = base_href
            self.pulp.run(
                "exporters_core_filesystem_exports_create",
                f"exporting '{repo}' version {version}" + (f" from version {base_version}" if base_href else ""),
                parameters={"filesystem_exporter_href": exporter["pulp_href"]},
                body=body,
            )
            _move_tree(out, dest)
        finally:
            try:  # not waited for: nothing depends on it
                self.pulp.call(
                    "exporters_core_filesystem_delete",
                    "deleting the filesystem exporter",
                    parameters={"filesystem_exporter_href": exporter["pulp_href"]},
                )
            except BackendError as e:
                log.warning("could not delete filesystem exporter %s: %s", exporter["pulp_href"], e)
            finally:
                shutil.rmtree(out, ignore_errors=True)
        # the package files' sha256 from the version's (cached) set; anything else is hashed
        url = self.pulp.conn.url
        members = self._version_set(href)
        known = {standard_location(_FILENAMES[(url, h)]): sha for sha, h in members.items() if (url, h) in _FILENAMES}
        files, new = [], 0
        for path in sorted(p for p in dest.rglob("*") if p.is_file()):
            rel = path.relative_to(dest).as_posix()
            size = path.stat().st_size
            sha = known.get(rel)
            if sha is not None:
                files.append(FileEntry(rel, sha, size))
            else:
                files.append(FileEntry(rel, file_sha256(path), size))
            if not rel.startswith(REPODATA + "/"):
                new += 1
        return ExportedTree(files=tuple(files), new_packages=new)

    # === import ===================================================================================
    def import_tree(self, repo: str, tree: Path, expect: ImportExpectation) -> int:
        from iss_plugin.adapters.content_types.yum import read_tree_packages

        tree = Path(tree)
        r = self._repo(repo, fresh=True)
        _check_tree(tree)
        try:
            listed = read_tree_packages(tree)
        except BackendError as e:
            raise BundleIntegrityError(f"{tree} is not a readable yum tree: {e.message}", e.problems) from None
        problems = [f"{u.href}: checksum type {u.checksum_type}, not sha256" for u in listed if u.sha256 is None]
        problems += [f"{u.href}: {why}" for u in listed if (why := _unsafe_href(u))]
        if problems:
            raise BundleIntegrityError(
                f"{tree} lists packages an import does not accept; nothing was imported", problems
            )
        shas = [u.sha256 for u in listed]
        digest = package_set_digest(shas)
        if digest != expect.target_digest or len(set(shas)) != expect.target_count:
            raise BundleIntegrityError(
                f"{tree} lists {len(set(shas))} packages with digest {digest}, but the bundle promises "
                f"{expect.target_count} packages with digest {expect.target_digest}; nothing was imported",
                details={
                    "expected_digest": expect.target_digest,
                    "expected_count": expect.target_count,
                    "digest": digest,
                    "count": len(set(shas)),
                },
            )
        latest_href = r["latest_version_href"]
        if package_set_digest(self._version_set(latest_href)) == expect.target_digest:
            return self._version_number(latest_href)  # already there: re-delivery changes nothing
        if expect.base_version is not None:
            self._check_base(repo, r, expect.base_version)
        # packages the tree lists without their file: the latest version or Pulp must hold them
        latest_set = self._version_set(latest_href)
        absent = [u for u in listed if u.sha256 not in latest_set and not (tree / u.href).is_file()]
        if absent:
            held = self._content_by_sha([u.sha256 for u in absent])
            lacking = [u for u in absent if u.sha256 not in held]
            if lacking:
                cls = BaseMismatch if expect.base_version is not None else BundleIntegrityError
                latest = self.version_info(repo, self._version_number(latest_href))
                raise cls(
                    f"{tree} leaves out {len(lacking)} package files that Pulp does not hold either; "
                    f"'{repo}' lacks the base this tree needs (it has version {latest.number}, "
                    f"{latest.package_count} packages, {latest.digest}); nothing was imported",
                    [u.href for u in lacking[:20]],
                    details={
                        "has": {
                            "version": latest.number,
                            "package_count": latest.package_count,
                            "digest": latest.digest,
                        }
                    },
                )
        to_upload = [u for u in listed if u.sha256 not in latest_set and (tree / u.href).is_file()]
        if len(to_upload) <= self.modify_import_limit and repomd_types(tree) <= PACKAGE_METADATA:
            version = self._apply_by_modify(repo, r, tree, listed)
        else:  # large changes, or metadata beyond packages (errata, comps, modules): Pulp's mirror sync
            with self._staged(tree) as staged:
                version = self._sync_from(r, staged.as_uri() + "/", mirror=True, what=str(tree))
        got = self._version_set(self._version_href(repo, version))
        if package_set_digest(got) != expect.target_digest:
            if version != self._version_number(latest_href):
                _SETS.drop((self.pulp.conn.url, self._version_href(repo, version)))
                self.pulp.run(
                    "repositories_rpm_rpm_versions_delete",
                    f"deleting the wrong version {version} of '{repo}'",
                    parameters={"rpm_rpm_repository_version_href": self._version_href(repo, version)},
                )
                self._repos.pop(self.pulp_name(repo), None)  # its cached latest version is gone
            raise BundleIntegrityError(
                f"importing {tree} into '{repo}' made {len(got)} packages with digest {package_set_digest(got)}, but "
                f"the bundle promises {expect.target_count} packages with digest {expect.target_digest}; "
                "the version was removed again",
            )
        return version

    def _apply_by_modify(self, repo: str, r: dict, tree: Path, listed) -> int:
        """Make the latest version equal to the tree's package list with one modify task: packages
        Pulp holds are added by reference, the tree's new package files are uploaded first. Costs
        follow the change, not the repository (a mirror sync re-reads every package's metadata)."""
        current = self._version_set(r["latest_version_href"])
        wanted = {u.sha256: u for u in listed}
        adding = [u for sha, u in wanted.items() if sha not in current]
        removing = [href for sha, href in current.items() if sha not in wanted]
        if not adding and not removing:
            return self._version_number(r["latest_version_href"])
        held = self._content_by_sha([u.sha256 for u in adding])
        uploaded, problems = self._send_files(repo, [(u.sha256, tree / u.href) for u in adding if u.sha256 not in held])
        if problems:
            raise BundleIntegrityError(
                f"{len(problems)} package files of {tree} were refused; nothing was imported", problems
            )
        held.update(uploaded)
        return self._modify(
            r,
            add=[held[u.sha256] for u in adding],
            remove=removing,
            doing=f"importing {tree} into '{repo}' (+{len(adding)} -{len(removing)})",
        )

    # === publication ==============================================================================
    def publish(self, repo: str, version: int) -> str:
        name = self.pulp_name(repo)
        href = self._version_href(repo, version)
        publication = self._publication(href, f"'{repo}' version {version}")
        dist = self.pulp.first("distributions_rpm_rpm_list", f"finding the distribution of '{repo}'", {"name": name})
        if dist is None:
            task = self.pulp.run(
                "distributions_rpm_rpm_create",
                f"distributing '{repo}'",
                body={"name": name, "base_path": name, "publication": publication},
            )
            dist_href = task["created_resources"][0]
        else:
            dist_href = dist["pulp_href"]
            if dist.get("publication") != publication or dist.get("repository"):
                self.pulp.run(
                    "distributions_rpm_rpm_partial_update",
                    f"switching the distribution of '{repo}'",
                    parameters={"rpm_rpm_distribution_href": dist_href},
                    body={"publication": publication, "repository": None},
                )
        dist = self.pulp.call(
            "distributions_rpm_rpm_read",
            f"reading the distribution of '{repo}'",
            parameters={"rpm_rpm_distribution_href": dist_href},
        )
        return dist["base_url"]

    # === the repository watcher ===================================================================
    def list_repositories(self) -> list[str]:
        """The keys of every rpm repository under this backend's prefix."""
        keys = []
        for e in self.pulp.list(
            "repositories_rpm_rpm_list",
            "listing repositories",
            {"name__startswith": self.repo_prefix, "fields": ["name"]} if self.repo_prefix else {"fields": ["name"]},
        ):
            key = self.key_of(e["name"])
            if key is not None:
                keys.append(key)
        return sorted(keys)

    def changed_since(self, since: datetime) -> list[RepositoryChange]:
        """Repository versions created at or after `since`, by iss or by anyone else (a pulp-cli sync,
        another tool): one query over every repository, oldest first."""
        versions = list(
            self.pulp.list(
                "repository_versions_list",
                "listing new repository versions",
                {
                    "pulp_created__gte": since.astimezone(UTC),
                    "ordering": ["pulp_created"],
                    "fields": ["pulp_href", "number", "pulp_created", "repository"],
                },
            )
        )
        repo_hrefs = sorted({v["repository"] for v in versions})
        names: dict[str, str] = {}
        for batch in _batched(repo_hrefs, HREF_BATCH):
            for e in self.pulp.list(
                "repositories_rpm_rpm_list",
                "naming changed repositories",
                {"pulp_href__in": list(batch), "fields": ["pulp_href", "name"]},
            ):
                names[e["pulp_href"]] = e["name"]
        out = []
        for v in versions:
            key = self.key_of(names[v["repository"]]) if v["repository"] in names else None
            if key is not None:
                out.append(RepositoryChange(key, v["number"], _utc(v["pulp_created"])))
        return out

    def remove_orphan_blobs(self, min_age_seconds: float) -> int:
        """Pulp's orphan cleanup (`iss store gc`): content no repository version holds and its files,
        older than min_age_seconds (Pulp counts whole minutes, rounded up: younger ones may belong to
        an import in flight). Server-wide, as Katello's orphan cleanup. Returns the files removed."""
        minutes = max(0, -(-int(min_age_seconds) // 60))
        task = self.pulp.run(
            "orphans_cleanup_cleanup", "removing orphaned content from Pulp", body={"orphan_protection_time": minutes}
        )
        return sum(
            int(r.get("done") or 0)
            for r in task.get("progress_reports") or []
            if "artifact" in (r.get("message") or "").lower()
        )

    def delete_repository(self, repo: str) -> None:
        """Delete the repository, its incoming repository, their remotes and its distribution (tests and
        clean-up). Idempotent."""
        for name in (self.pulp_name(repo), self.incoming_name(repo)):
            for list_op, delete_op, param in (
                ("distributions_rpm_rpm_list", "distributions_rpm_rpm_delete", "rpm_rpm_distribution_href"),
                ("remotes_rpm_rpm_list", "remotes_rpm_rpm_delete", "rpm_rpm_remote_href"),
                ("repositories_rpm_rpm_list", "repositories_rpm_rpm_delete", "rpm_rpm_repository_href"),
            ):
                e = self.pulp.first(list_op, f"finding '{name}'", {"name": name})
                if e is not None:
                    self.pulp.run(delete_op, f"deleting '{name}'", parameters={param: e["pulp_href"]})
            self._repos.pop(name, None)

    # === internals: repositories and versions =====================================================
    def _find_repo(self, name: str) -> dict | None:
        e = self.pulp.first("repositories_rpm_rpm_list", f"finding repository '{name}'", {"name": name})
        if e is not None:
            self._repos[name] = e
        return e

    def _repo(self, repo: str, *, fresh: bool = False) -> dict:
        name = self.pulp_name(repo)
        cached = self._repos.get(name)
        if cached is not None and fresh:
            try:
                cached = self.pulp.call(
                    "repositories_rpm_rpm_read",
                    f"reading repository '{name}'",
                    parameters={"rpm_rpm_repository_href": cached["pulp_href"]},
                )
                self._repos[name] = cached
            except BackendError as e:
                if e.details.get("status") != 404:
                    raise
                self._repos.pop(name, None)
                cached = None
        if cached is None:
            cached = self._find_repo(name)
        if cached is None:
            raise NotFound(f"repository '{repo}' does not exist in Pulp (as '{name}'); ensure_repository creates it")
        return cached

    @staticmethod
    def _version_number(href: str) -> int:
        return int(href.rstrip("/").rsplit("/", 1)[-1])

    def _version_href(self, repo: str, version: int) -> str:
        r = self._repo(repo)
        if version > self._version_number(r["latest_version_href"]):  # versions below it are known to exist
            r = self._repo(repo, fresh=True)
        if version < 0 or version > self._version_number(r["latest_version_href"]):
            raise NotFound(
                f"repository '{repo}' has no version {version} in Pulp "
                f"(its latest is {self._version_number(r['latest_version_href'])})"
            )
        return f"{r['versions_href']}{version}/"

    def _check_base(self, repo: str, r: dict, base_version: int) -> None:
        numbers = {
            v["number"]
            for v in self.pulp.list(
                "repositories_rpm_rpm_versions_list",
                f"listing versions of '{repo}'",
                {"rpm_rpm_repository_href": r["pulp_href"], "fields": ["number"]},
            )
        }
        if base_version not in numbers:
            latest = self.version_info(repo, self._version_number(r["latest_version_href"]))
            raise BaseMismatch(
                f"repository '{repo}' has no version {base_version} to apply this tree to; its latest is "
                f"{latest.number} ({latest.package_count} packages, {latest.digest})",
                details={
                    "has": {"version": latest.number, "package_count": latest.package_count, "digest": latest.digest}
                },
            )

    def _walk_versions(self, r: dict) -> list[tuple[dict, dict[str, str]]]:
        """Every version of the repository with its package set {sha256: content href}."""
        versions = sorted(
            self.pulp.list(
                "repositories_rpm_rpm_versions_list",
                f"listing versions of '{r['name']}'",
                {
                    "rpm_rpm_repository_href": r["pulp_href"],
                    "fields": ["pulp_href", "number", "pulp_created", "content_summary"],
                },
            ),
            key=lambda v: v["number"],
        )
        out: list[tuple[dict, dict[str, str]]] = []
        prev: dict[str, str] | None = None
        for v in versions:
            key = (self.pulp.conn.url, v["pulp_href"])
            shas = _SETS.get(key)
            if shas is None:
                shas = self._apply_summary(prev, v) if prev is not None else None
                if shas is None:
                    shas = self._full_set(v["pulp_href"])
                _SETS.put(key, shas)
            out.append((v, shas))
            prev = shas
        return out

    def _set_query(self, params: dict) -> Iterable[dict]:
        for e in self.pulp.list("content_rpm_packages_list", "listing packages", dict(params, fields=SET_FIELDS)):
            _remember_filename(self.pulp.conn.url, e)
            yield e

    def _full_set(self, version_href: str) -> dict[str, str]:
        return {_sha_of(e): e["pulp_href"] for e in self._set_query({"repository_version": version_href})}

    def _version_set(self, version_href: str) -> dict[str, str]:
        """The version's {sha256: content href}: from its predecessor's cached set and what Pulp says
        the version added and removed when that set is known (the cost follows the change), checked
        against Pulp's count of the version's packages; otherwise listed in full."""
        key = (self.pulp.conn.url, version_href)
        shas = _SETS.get(key)
        if shas is not None:
            return shas
        number = self._version_number(version_href)
        prev = (
            _SETS.get((self.pulp.conn.url, version_href[: -len(f"{number}/")] + f"{number - 1}/")) if number else None
        )
        if prev is not None:
            v = self.pulp.call(
                "repositories_rpm_rpm_versions_read",
                "reading a repository version",
                parameters={
                    "rpm_rpm_repository_version_href": version_href,
                    "fields": ["pulp_href", "number", "content_summary"],
                },
            )
            shas = self._apply_summary(prev, v)
        if shas is None:
            shas = self._full_set(version_href)
        _SETS.put(key, shas)
        return shas

    def _apply_summary(self, prev: dict[str, str], v: dict) -> dict[str, str] | None:
        """prev + what version v added - what it removed; None when the result disagrees with Pulp's
        count of v's packages (a version between them was deleted: list v in full instead)."""
        summary = v.get("content_summary") or {}
        shas = dict(prev)
        if "rpm.package" in summary.get("removed", {}):
            for e in self._set_query({"repository_version_removed": v["pulp_href"]}):
                shas.pop(_sha_of(e), None)
        if "rpm.package" in summary.get("added", {}):
            for e in self._set_query({"repository_version_added": v["pulp_href"]}):
                shas[_sha_of(e)] = e["pulp_href"]
        present = summary.get("present", {}).get("rpm.package", {}).get("count", 0)
        return shas if present == len(shas) else None

    @staticmethod
    def _package(e: dict) -> Package:
        filename = (e.get("location_href") or "").rsplit("/", 1)[-1]
        return Package(
            name=e["name"],
            epoch=str(e.get("epoch") or "0"),
            version=e["version"],
            release=e["release"],
            arch=e["arch"],
            sha256=_sha_of(e),
            size=int(e.get("size_package") or 0),
            location=standard_location(filename),
        )

    # === internals: content ==========================================================================
    def _content_by_sha(self, shas: Sequence[str]) -> dict[str, str]:
        """{sha256: content href} of the packages Pulp holds already (in any repository)."""
        found: dict[str, str] = {}
        for batch in _batched(list(shas), IN_BATCH):
            for e in self.pulp.list(
                "content_rpm_packages_list",
                "looking up packages by checksum",
                {"pkgId__in": list(batch), "fields": SET_FIELDS},
            ):
                found[_sha_of(e)] = e["pulp_href"]
        return found

    def _send_files(self, repo: str, items: Sequence[tuple[str, Path]]) -> tuple[dict[str, str], list[str]]:
        """Put package files into Pulp without changing `repo`: {sha256: content href} and problems.
        Few files: one synchronous upload each. Many: one mirror sync of a yum tree around them into
        `repo`'s incoming repository (measured here: 50 uploads 3.3 s, the sync 1.8 s; 10 uploads
        1.4 s, the sync 1.6 s), so `repo` still gets exactly one new version, by the caller's modify."""
        if len(items) < self.bulk_upload or self.shared_import_dir is None:
            return self._upload(items)
        r = self._ensure_named(
            self.incoming_name(repo),
            {"retain_repo_versions": 1, "description": f"iss: package files on their way into {repo}"},
        )
        problems, _version = self._sync_around(
            r, [path for _sha, path in items], tag="incoming", mirror=True, what=f"{len(items)} new package files"
        )
        if problems:
            return {}, problems
        # by checksum, not from the version the sync made: a concurrent import's sync may replace it
        got = self._content_by_sha([sha for sha, _path in items])
        lost = [
            f"{path.name}: Pulp's sync of the new package files left it out" for sha, path in items if sha not in got
        ]
        return {sha: got[sha] for sha, _path in items if sha in got}, lost

    def _sync_around(
        self, r: dict, paths: list[Path], *, tag: str, mirror: bool, what: str
    ) -> tuple[list[str], int | None]:
        """A yum tree around `paths` in the shared import directory, synced into `r` (one Pulp task):
        ([], the version it made), or (the files that could not go into the tree, None: nothing synced)."""
        stage = self.shared_import_dir / f"iss-{tag}-{uuid.uuid4().hex}"  # type: ignore[operator]
        try:
            problems = write_repo_around(stage, paths)
            if problems:
                return problems, None
            return [], self._sync_from(r, stage.as_uri() + "/", mirror=mirror, what=what)
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def _upload(self, items: Sequence[tuple[str, Path]]) -> tuple[dict[str, str], list[str]]:
        """Upload files (Pulp's synchronous upload: no task, no repository version)."""

        def one(item: tuple[str, Path]) -> tuple[str, str | None, str | None]:
            sha, path = item
            try:
                e = self.pulp.upload_file("content_rpm_packages_upload", path)
            except BackendError as err:
                return sha, None, f"{path.name}: {err.message}"
            got = _sha_of(e)
            if got != sha:
                return sha, None, f"{path.name}: Pulp stored sha256 {got}, the file has {sha}"
            return sha, e["pulp_href"], None

        done: dict[str, str] = {}
        problems: list[str] = []
        if not items:
            return done, problems
        self.pulp.operation_url("content_rpm_packages_upload")  # resolved once, before the threads start
        with ThreadPoolExecutor(max_workers=max(1, min(self.upload_threads, len(items)))) as pool:
            for sha, href, problem in pool.map(one, items):
                if problem:
                    problems.append(problem)
                else:
                    done[sha] = href  # type: ignore[assignment]
        return done, problems

    def _modify(self, r: dict, *, add: Sequence[str] = (), remove: Sequence[str] = (), doing: str) -> int:
        body = {"base_version": r["latest_version_href"]}
        if add:
            body["add_content_units"] = list(add)
        if remove:
            body["remove_content_units"] = list(remove)
        task = self.pulp.run(
            "repositories_rpm_rpm_modify", doing, parameters={"rpm_rpm_repository_href": r["pulp_href"]}, body=body
        )
        return self._result_version(task, r)

    def _result_version(self, task: dict, r: dict) -> int:
        for href in task.get("created_resources") or []:
            if href and "/versions/" in href and href.startswith(r["pulp_href"]):
                return self._version_number(href)
        # no version in the task's resources: read the repository by href (an incoming repository's
        # name is no key, so it cannot be looked up by name)
        fresh = self.pulp.call(
            "repositories_rpm_rpm_read",
            f"reading repository '{r['name']}'",
            parameters={"rpm_rpm_repository_href": r["pulp_href"]},
        )
        if fresh["name"] in self._repos:
            self._repos[fresh["name"]] = fresh
        return self._version_number(fresh["latest_version_href"])

    # === internals: sync, remotes, publications ====================================================
    def _remote(self, name: str, url: str) -> str:
        desired = {"url": url, "policy": "immediate", **self.remote_options}
        e = self.pulp.first("remotes_rpm_rpm_list", f"finding remote '{name}'", {"name": name})
        if e is None:
            e = self.pulp.call("remotes_rpm_rpm_create", f"creating remote '{name}'", body={"name": name, **desired})
            return e["pulp_href"]
        changed = {k: v for k, v in desired.items() if e.get(k) != v}
        if changed:
            self.pulp.run(
                "remotes_rpm_rpm_partial_update",
                f"pointing remote '{name}' at {url}",
                parameters={"rpm_rpm_remote_href": e["pulp_href"]},
                body=changed,
            )
        return e["pulp_href"]

    def _sync_from(self, r: dict, url: str, *, mirror: bool, what: str) -> int:
        remote = self._remote(r["name"], url)
        task = self.pulp.run(
            "repositories_rpm_rpm_sync",
            f"syncing '{r['name']}' from {what}",
            parameters={"rpm_rpm_repository_href": r["pulp_href"]},
            body={"remote": remote, "sync_policy": "mirror_content_only" if mirror else "additive", "optimize": True},
        )
        return self._result_version(task, r)

    def _publication(self, version_href: str, what: str) -> str:
        e = self.pulp.first(
            "publications_rpm_rpm_list",
            f"finding a publication of {what}",
            {"repository_version": version_href, "fields": ["pulp_href", "checksum_type"]},
        )
        if e is not None:
            return e["pulp_href"]
        task = self.pulp.run(
            "publications_rpm_rpm_create",
            f"publishing {what}",
            body={"repository_version": version_href, "checksum_type": "sha256"},
        )
        return task["created_resources"][0]

    class _Staged:
        def __init__(self, backend: PulpBackend, tree: Path):
            self.backend, self.tree, self.path = backend, tree, None

        def __enter__(self) -> Path:
            root = self.backend.shared_import_dir
            if root is None:
                raise ConfigError(
                    "the pulp backend needs pulp.shared_import_dir (under Pulp's ALLOWED_IMPORT_PATHS) "
                    "to read local trees"
                )
            try:
                self.tree.resolve().relative_to(root.resolve())
                return self.tree.resolve()  # already where Pulp may read
            except ValueError:
                pass
            self.path = root / f"iss-import-{uuid.uuid4().hex}"
            link_or_copy_tree(self.tree, self.path)
            return self.path

        def __exit__(self, *exc) -> None:
            if self.path is not None:
                shutil.rmtree(self.path, ignore_errors=True)

    def _staged(self, tree: Path) -> PulpBackend._Staged:
        return PulpBackend._Staged(self, Path(tree))


# === module helpers ================================================================================
def session_for(conn: PulpConnection) -> PulpSession:
    """One logged-in session per Pulp and user in a process (a login and the API description cost ~2 s)."""
    key = (conn.url, conn.username, hashlib.sha256(conn.password.encode()).hexdigest())
    with _SESSIONS_LOCK:
        s = _SESSIONS.get(key)
        if s is None:
            s = _SESSIONS[key] = PulpSession(conn)
        return s


def _move_tree(src: Path, dest: Path) -> None:
    """Move Pulp's export into dest (an empty directory): rename entries on one filesystem, else copy."""
    if not src.is_dir():
        raise BackendError(f"Pulp's export finished but wrote nothing at {src}")
    for child in src.iterdir():
        target = dest / child.name
        try:
            os.rename(child, target)
        except OSError:
            if child.is_dir():
                shutil.copytree(child, target)
            else:
                shutil.copy2(child, target)


def _unsafe_href(u) -> str | None:
    """Why a package location in a tree's metadata may not be followed (None: it may)."""
    if u.base_url:
        return f"points elsewhere (xml:base {u.base_url})"
    href = u.href
    if href.startswith("/") or "://" in href or "\\" in href or "\0" in href or ".." in href.split("/"):
        return "is not a relative path inside the tree"
    return None


def _check_tree(tree: Path) -> None:
    """Refuse what an import never accepts (before Pulp sees anything): links, devices, odd names."""
    if not tree.is_dir() or tree.is_symlink():
        raise BundleIntegrityError(f"{tree} is not a directory holding a yum tree")
    problems = []
    for dirpath, dirnames, filenames in os.walk(tree):
        d = Path(dirpath)
        for name in dirnames + filenames:
            p = d / name
            rel = p.relative_to(tree).as_posix()
            if p.is_symlink():
                problems.append(f"{rel} is a symbolic link")
            elif name in filenames and not p.is_file():
                problems.append(f"{rel} is not a regular file")
            elif "\\" in rel or "\0" in rel:
                problems.append(f"{rel} has a character a tree path may not hold")
    if problems:
        raise BundleIntegrityError(f"{tree} holds entries an import does not accept; nothing was imported", problems)
