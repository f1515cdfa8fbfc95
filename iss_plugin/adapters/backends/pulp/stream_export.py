"""Streaming a version out of Pulp by reference (issue 12, a Pulp-backed source).

The version's publication (reused, one per version) is served by a distribution of its own at a
unique base path (`iss-stream-<publication id>`, made once): its repodata files are small and
downloaded once each into the iss store's cache (`<data dir>/store/pulp-cache/repodata/ab/cdef...`,
content-addressed) so the manifest can carry their sha256; the package files stay in Pulp and
the tree's `sources` name their URLs on Pulp's content app, read while the stream is sent
(adapters/bundles/stream.py). A publication never changes, so the same version gives the same
files and the same bytes every time (a range request regenerates the stream).

The stream distributions are hidden and guarded: a header content guard (`iss-stream`, made once
per Pulp with a random value) answers their files only to a request carrying its header, which
iss sends; anyone else reaching Pulp's content app gets 403. `iss store gc` deletes the stream
distributions older than its minimum age; a stream whose distribution was deleted while it ran
is cut, and the destination's resume makes it again."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

import httpx
from defusedxml import ElementTree

from iss_plugin.adapters.backends.base import ExportedTree, clear_export_dir, prepare_export_dir
from iss_plugin.adapters.backends.pulp.catalog import PulpCatalog
from iss_plugin.adapters.backends.pulp.client import Entity
from iss_plugin.adapters.backends.pulp.entities import first_created, href_of
from iss_plugin.adapters.backends.pulp.placement import PulpPlacement
from iss_plugin.adapters.bundles.stream import headers_for, send_headers_under
from iss_plugin.domain.errors import BackendError, ConfigError
from iss_plugin.domain.manifest import FileEntry
from iss_plugin.domain.packages import Package

REPOMD = "repodata/repomd.xml"
_REPO_NS = "{http://linux.duke.edu/metadata/repo}"
_DOWNLOAD_CHUNK = 1 << 20

STREAM_PREFIX = "iss-stream-"  # the stream distributions' names and base paths: + the publication's id
STREAM_GUARD = "iss-stream"  # their header content guard
STREAM_GUARD_HEADER = "X-Iss-Stream-Key"

# publication href -> (base URL of its stream distribution, [(path, sha256, size)] of its repodata)
_PUBLISHED: dict[tuple[str, str], tuple[str, list[tuple[str, str, int]]]] = {}
_PUBLISHED_LOCK = threading.Lock()
# Pulp's URL -> (href of the stream content guard, the header it asks for)
_GUARDS: dict[str, tuple[str, dict[str, str]]] = {}


class PulpStreamExport(PulpPlacement, PulpCatalog):
    """StreamsByReference: a version's tree whose files are read from Pulp's content app."""

    stream_cache_dir: Path | None

    def stream_version_by_reference(
        self,
        repo: str,
        version: int,
        base_version: int | None,
        dest: Path,
        *,
        added: Sequence[Package] | None = None,
        relative_to: Path | None = None,
    ) -> ExportedTree:
        if self.stream_cache_dir is None:
            raise ConfigError("the pulp backend needs a cache directory (the iss data dir's store) to stream bundles")
        dest = Path(dest)
        created = prepare_export_dir(dest)
        try:
            publication = self._publication(self._version_href(repo, version), f"'{repo}' version {version}")
            base_url, repodata = self._stream_publication(publication)
            if added is None:
                added = self.version_changes(repo, base_version, version).added
        except BaseException:
            clear_export_dir(dest, remove_self=created)
            raise
        prefix = (
            "" if relative_to is None or Path(relative_to) == dest else dest.relative_to(relative_to).as_posix() + "/"
        )
        packages = sorted(added, key=lambda p: p.location)
        files = [FileEntry(prefix + p.location, p.sha256, p.size) for p in packages]
        files += [FileEntry(prefix + path, sha, size) for path, sha, size in repodata]
        sources = {prefix + p.location: base_url + p.location for p in packages}
        sources.update((prefix + path, os.fspath(self._cached(sha))) for path, sha, _ in repodata)
        return ExportedTree(files=tuple(files), new_packages=len(packages), sources=sources, link_sources=False)

    def _stream_publication(self, publication: str) -> tuple[str, list[tuple[str, str, int]]]:
        """The base URL serving `publication` and its repodata files, each kept in the cache."""
        key = (self.pulp.conn.url, publication)
        with _PUBLISHED_LOCK:
            known = _PUBLISHED.get(key)
        name = STREAM_PREFIX + publication.rstrip("/").rsplit("/", 1)[-1]
        if (
            known is not None
            and all(self._cached(sha).is_file() for _, sha, _ in known[1])
            # else `iss store gc` deleted it: made again below, at the same base path
            and self.pulp.first("distributions_rpm_rpm_list", "finding a stream distribution", {"name": name})
        ):
            return known
        base_url = self._stream_distribution(name, publication)
        repodata = [self._download(base_url, REPOMD)]
        root = ElementTree.fromstring(self._cached(repodata[0][1]).read_bytes())
        hrefs = sorted({str(loc.get("href")) for loc in root.iter(f"{_REPO_NS}location") if loc.get("href")})
        repodata += [self._download(base_url, href) for href in hrefs]
        found = (base_url, sorted(repodata))
        with _PUBLISHED_LOCK:
            _PUBLISHED[key] = found
        return found

    def _stream_distribution(self, name: str, publication: str) -> str:
        """The base URL of the distribution `name` that serves `publication` to streams (made once),
        guarded; the guard's header is sent with every read under it from now on."""
        guard, header = self._stream_guard()
        dist: Entity | None = self.pulp.first(
            "distributions_rpm_rpm_list", "finding a stream distribution", {"name": name}
        )
        if dist is None:
            try:
                href = first_created(
                    self.pulp.run(
                        "distributions_rpm_rpm_create",
                        f"distributing publication {publication} for streaming",
                        # hidden: not listed at the content app's root
                        body={
                            "name": name,
                            "base_path": name,
                            "publication": publication,
                            "hidden": True,
                            "content_guard": guard,
                        },
                    )
                )
            except BackendError:  # a concurrent stream of the same version made it first
                dist = self.pulp.first("distributions_rpm_rpm_list", "finding a stream distribution", {"name": name})
                if dist is None:
                    raise
                href = href_of(dist)
        else:
            href = href_of(dist)
            if dist.get("content_guard") != guard:  # made by an iss before the guard
                self.pulp.run(
                    "distributions_rpm_rpm_partial_update",
                    f"guarding the stream distribution {name}",
                    parameters={"rpm_rpm_distribution_href": href},
                    body={"content_guard": guard},
                )
        read: Entity = self.pulp.call(
            "distributions_rpm_rpm_read",
            "reading a stream distribution",
            parameters={"rpm_rpm_distribution_href": href},
        )
        base_url: str = read["base_url"]
        base_url = base_url if base_url.endswith("/") else base_url + "/"
        send_headers_under(base_url.removesuffix(name + "/") + STREAM_PREFIX, header)
        return base_url

    def _stream_guard(self) -> tuple[str, dict[str, str]]:
        """(href, header) of the content guard of the stream distributions, made once per Pulp."""
        with _PUBLISHED_LOCK:
            known = _GUARDS.get(self.pulp.conn.url)
        if known is not None:
            return known
        doing = "finding the content guard of stream distributions"
        guard: Entity | None = self.pulp.first("contentguards_core_header_list", doing, {"name": STREAM_GUARD})
        if guard is None:
            body = {
                "name": STREAM_GUARD,
                "description": "iss: only iss reads the files of its stream distributions",
                "header_name": STREAM_GUARD_HEADER,
                "header_value": secrets.token_urlsafe(32),
            }
            try:
                guard = self.pulp.call("contentguards_core_header_create", "guarding stream distributions", body=body)
            except BackendError:  # another iss process made it first
                guard = self.pulp.first("contentguards_core_header_list", doing, {"name": STREAM_GUARD})
                if guard is None:
                    raise
        assert guard is not None
        value = base64.b64encode(str(guard["header_value"]).encode()).decode()  # Pulp compares it decoded
        found = (href_of(guard), {str(guard["header_name"]): value})
        with _PUBLISHED_LOCK:
            _GUARDS[self.pulp.conn.url] = found
        return found

    def _cached(self, sha256: str) -> Path:
        assert self.stream_cache_dir is not None
        return self.stream_cache_dir / sha256[:2] / sha256[2:]

    def _download(self, base_url: str, path: str) -> tuple[str, str, int]:
        """(path, sha256, size) of a metadata file, downloaded into the cache (read-only)."""
        assert self.stream_cache_dir is not None
        tmp = self.stream_cache_dir / "tmp" / uuid.uuid4().hex
        tmp.parent.mkdir(parents=True, exist_ok=True)
        h, size = hashlib.sha256(), 0
        try:
            with (
                httpx.stream(
                    "GET", base_url + path, headers=headers_for(base_url), timeout=60.0, follow_redirects=True
                ) as r,
                open(tmp, "wb") as f,
            ):
                if r.status_code != 200:
                    raise BackendError(f"Pulp's content app answered {r.status_code} for {base_url + path}")
                for chunk in r.iter_bytes(_DOWNLOAD_CHUNK):
                    h.update(chunk)
                    size += len(chunk)
                    f.write(chunk)
            sha = h.hexdigest()
            target = self._cached(sha)
            if target.is_file():
                os.utime(target)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(tmp, 0o444)
                os.replace(tmp, target)
        except httpx.HTTPError as e:
            raise BackendError(f"cannot download {base_url + path} from Pulp's content app: {e}") from None
        finally:
            tmp.unlink(missing_ok=True)
        return path, sha, size
