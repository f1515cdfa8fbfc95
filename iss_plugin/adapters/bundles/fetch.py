"""Fetching an announced bundle onto this server: hardlinks (else copies) of a file:// bundle under
the trusted roots, or a streamed download of http(s)://, checked against the announced size and sha256."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import httpx

from iss_plugin.adapters.disk_faults import disk_faults
from iss_plugin.domain.errors import BundleIntegrityError, RejectedInput, TransientError, UntrustedSource

_SAFE_NAME = re.compile(r'filename="([A-Za-z0-9][A-Za-z0-9._-]{0,200})"')


def fetch_bundle(
    location: str,
    into: Path,
    size: int | None,
    roots: tuple[Path, ...] = (),
    sha256: str | None = None,
    authorize: Callable[[str, str], str] | None = None,
) -> Path:
    """A local copy of an announced bundle: hardlinks (else copies) of a file:// bundle, or a
    streamed download of http(s)://. file:// paths must lie under `roots` when roots are set;
    links inside a directory bundle are copied as links, so the bundle reader refuses them.
    `authorize(method, path)`: the Authorization header an http(s) download sends (a destination
    signs its request: adapters/bundles/request_signing.py).
    A full or unwritable disk under `into`: BackendError (adapters.disk_faults)."""
    with disk_faults(into, doing=f"fetching {location} into {into}"):
        try:
            return _fetch(location, into, size, roots, sha256, authorize)
        except _CopyFailed as e:
            raise e.error from None


class _CopyFailed(Exception):
    """An OSError of a copy inside shutil.copytree, carried past it: copytree would turn it into a
    shutil.Error without an errno, and a full disk would no longer be recognised."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _fetch(
    location: str,
    into: Path,
    size: int | None,
    roots: tuple[Path, ...],
    sha256: str | None,
    authorize: Callable[[str, str], str] | None,
) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    url = urllib.parse.urlparse(location)
    if url.scheme == "file":
        dst = _fetch_file(Path(urllib.parse.unquote(url.path)), location, into, size, roots)
        if sha256 and dst.is_file() and file_sha256(dst) != sha256:
            raise BundleIntegrityError(f"{location} does not have the sha256 its announcement gives ({sha256})")
        return dst
    if url.scheme not in ("http", "https"):
        raise RejectedInput(f"bundle location {location!r} is neither file:// nor http(s)://")

    return _download(location, url.path, into, size, sha256, authorize)


RESUMES = 3  # a broken connection continues where it stopped (Range + If-Range), this many times


def _download(
    location: str,
    path: str,
    into: Path,
    size: int | None,
    sha256: str | None,
    authorize: Callable[[str, str], str] | None,
) -> Path:
    """Stream `location` into `into`; a connection lost mid-way resumes with a range request when
    the server offers ranges (the server's ETag in If-Range: a changed archive comes whole)."""
    dst = into / (Path(path).name or "bundle.tar.gz")
    written, digest, etag, named = 0, hashlib.sha256(), None, None
    with open(dst, "wb") as fh:
        for attempt in range(RESUMES + 1):
            headers = {"Authorization": authorize("GET", path)} if authorize else {}
            if written:
                headers |= {"Range": f"bytes={written}-", **({"If-Range": etag} if etag else {})}
            try:
                with httpx.stream("GET", location, timeout=60, follow_redirects=False, headers=headers) as r:
                    r.raise_for_status()
                    if written and not r.headers.get("content-range", "").startswith(f"bytes {written}-"):
                        fh.seek(0)  # the whole archive again (it changed, or no ranges)
                        fh.truncate()
                        written, digest = 0, hashlib.sha256()
                    etag = r.headers.get("etag") if r.headers.get("accept-ranges") == "bytes" else None
                    for chunk in r.iter_bytes():  # as received: a break loses nothing read
                        written += len(chunk)
                        if size is not None and written > size:
                            raise BundleIntegrityError(
                                f"download of {location} is larger than the announced {size} bytes"
                            )
                        digest.update(chunk)
                        fh.write(chunk)
                    named = _SAFE_NAME.search(r.headers.get("content-disposition", ""))
                break
            except httpx.HTTPStatusError as e:
                raise TransientError(
                    f"could not download {location}: {e}", details={"status": e.response.status_code}
                ) from None
            except httpx.TransportError as e:
                if attempt == RESUMES or etag is None:
                    raise TransientError(f"could not download {location}: {e}") from None
            except httpx.HTTPError as e:
                raise TransientError(f"could not download {location}: {e}") from None
    if named and named.group(1) != dst.name:
        dst = dst.rename(into / named.group(1))
    if size is not None and dst.stat().st_size != size:
        raise TransientError(f"download of {location} has {dst.stat().st_size} bytes, expected {size}")
    if sha256 and digest.hexdigest() != sha256:
        raise BundleIntegrityError(f"download of {location} does not have the announced sha256 {sha256}")
    return dst


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fetch_file(src: Path, location: str, into: Path, size: int | None, roots: tuple[Path, ...]) -> Path:
    if not src.is_absolute():
        raise RejectedInput(f"bundle location {location!r} is not an absolute file:// path")
    try:
        real = src.resolve(strict=True)
    except FileNotFoundError:
        raise TransientError(f"bundle {location} is not there (yet)") from None
    if roots and not any(real.is_relative_to(Path(r).resolve()) for r in roots):
        raise UntrustedSource(
            f"bundle location {location} is outside the directories this server fetches from "
            f"({', '.join(str(r) for r in roots)}; setting fetch_roots)"
        )
    dst = into / real.name
    if real.is_dir():
        if not (real / "manifest.json").is_file():
            raise RejectedInput(f"{location} is a directory but not an iss bundle (no manifest.json)")
        shutil.copytree(real, dst, symlinks=True, copy_function=_link_or_copy)
    elif real.is_file():
        if size is not None and real.stat().st_size != size:
            raise BundleIntegrityError(f"{location} has {real.stat().st_size} bytes, the announcement says {size}")
        _link_or_copy(real, dst)
    else:
        raise RejectedInput(f"{location} is neither a bundle directory nor a bundle file")
    return dst


def _link_or_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    try:
        Path(dst).unlink(missing_ok=True)
        os.link(src, dst)
    except OSError:
        try:
            shutil.copy2(src, dst)
        except OSError as e:
            raise _CopyFailed(e) from None
