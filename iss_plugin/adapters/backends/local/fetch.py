"""Downloading for `sync`: file:// and http(s):// URLs, streamed, verified while they are written."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import httpx

from iss_plugin.domain.errors import BackendError

BUFSIZE = 1 << 20
_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}

Write = Callable[[bytes], None]  # takes each chunk of the file being fetched, in order


class Fetcher:
    """fetch(url, dest, checksum_type, checksum, size): download url to dest and check it.

    Counts what it fetched (files, bytes), so callers can report and tests can prove that a sync
    fetched only what the store lacked."""

    def __init__(self, timeout: float = 60.0):
        self.timeout = timeout
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()  # fetch is called from several threads; httpx.Client may be shared
        self.files = 0
        self.bytes = 0

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self.timeout, follow_redirects=True)
            return self._client

    def __call__(
        self,
        url: str,
        dest: Path,
        checksum_type: str | None = None,
        checksum: str | None = None,
        size: int | None = None,
    ) -> str:
        """Returns the sha256 of what was written to dest."""
        scheme = urlsplit(url).scheme.lower()
        try:
            algo = {"sha": "sha1"}.get((checksum_type or "").lower(), (checksum_type or "").lower())
            hasher = hashlib.new(algo) if checksum_type and checksum else None
        except ValueError:
            raise BackendError(f"{url}: unknown checksum type '{checksum_type}' in the repository metadata") from None
        sha = hashlib.sha256()
        with open(dest, "wb") as out:

            def write(chunk: bytes) -> None:
                out.write(chunk)
                sha.update(chunk)
                if hasher is not None:
                    hasher.update(chunk)

            if scheme == "file":
                n = self._read_file(url, write)
            elif scheme in ("http", "https"):
                n = self._read_http(url, write)
            else:
                raise BackendError(f"cannot fetch {url}: only file://, http:// and https:// URLs are supported")
        problems = []
        if size is not None and n != size:
            problems.append(f"size is {n} bytes, the metadata says {size}")
        if hasher is not None and checksum is not None and hasher.hexdigest() != checksum.lower():
            problems.append(f"{checksum_type} is {hasher.hexdigest()}, the metadata says {checksum.lower()}")
        if problems:
            dest.unlink(missing_ok=True)
            raise BackendError(
                f"{url} does not match the repository metadata (a broken or changing mirror?); nothing was stored",
                problems,
                details={"url": url},
            )
        with self._lock:
            self.files += 1
            self.bytes += n
        return sha.hexdigest()

    def _read_file(self, url: str, write: Write) -> int:
        path = Path(url2pathname(urlsplit(url).path))
        n = 0
        try:
            with open(path, "rb") as f:
                while chunk := f.read(BUFSIZE):
                    write(chunk)
                    n += len(chunk)
        except FileNotFoundError:
            raise BackendError(f"{url} does not exist ({path} is missing)", details={"url": url}) from None
        except IsADirectoryError:
            raise BackendError(f"{url} is a directory, not a file", details={"url": url}) from None
        except PermissionError:
            raise BackendError(f"{url}: permission denied reading {path}", details={"url": url}) from None
        return n

    def _read_http(self, url: str, write: Write) -> int:
        n = 0
        try:
            with self.client.stream("GET", url) as r:
                if r.status_code >= 400:
                    transient = r.status_code in _TRANSIENT_STATUS or r.status_code >= 500
                    raise BackendError(
                        f"GET {url} answered HTTP {r.status_code}"
                        + (" (server error: will retry)" if transient else ""),
                        transient=transient,
                        details={"url": url, "status": r.status_code},
                    )
                for chunk in r.iter_bytes(BUFSIZE):
                    write(chunk)
                    n += len(chunk)
        except httpx.TransportError as e:
            raise BackendError(
                f"cannot fetch {url}: {type(e).__name__}: {e or 'connection failed'} (is the server reachable?)",
                transient=True,
                details={"url": url},
            ) from None
        return n
