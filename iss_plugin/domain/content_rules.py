"""Where content may come from: sync URLs and their overrides, and the rule that a custom product
never receives Red Hat content (by import, by upload, or by sync URL). Pure functions over values."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from .errors import RejectedInput, UsageError

SYNC_SCHEMES = ("file", "http", "https")
_BLANK = re.compile(r"[\s\x00-\x1f\x7f]")


def check_sync_url(url: str, option: str = "--url") -> str:
    """A yum repository URL iss can synchronize from: file://, http:// or https://, no blanks."""
    if not url or _BLANK.search(url):
        raise UsageError(
            f"{option} '{url}' contains spaces or control characters (or is empty): "
            "give a URL such as https://cdn.example.com/repo/ (write a space as %20)"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError as e:
        raise UsageError(f"{option} '{url}' is not a URL ({e}): give file://, http:// or https://") from None
    scheme = parts.scheme.lower()
    if scheme not in SYNC_SCHEMES:
        raise UsageError(
            f"{option} '{url}': the scheme must be one of {', '.join(SYNC_SCHEMES)} "
            f"(got '{parts.scheme or 'none'}'), for example https://cdn.example.com/repo/ or file:///srv/repo/"
        )
    if scheme in ("http", "https") and not parts.hostname:
        raise UsageError(f"{option} '{url}' has no host name")
    if scheme == "file" and not parts.path.startswith("/"):
        raise UsageError(f"{option} '{url}' has no absolute path (file:///absolute/path/)")
    return url


def join_url(base: str, relative: str) -> str:
    """base + relative path, with exactly one '/' between them and a trailing '/'."""
    rel = relative.strip("/")
    joined = base.rstrip("/") + "/" + rel if rel else base.rstrip("/")
    return joined + "/"


@dataclass(frozen=True)
class SyncLocation:
    """Everything that decides where one repository synchronizes from."""

    label: str
    redhat: bool
    upstream: str | None
    repository_override: str | None  # iss repository set-url
    product_override: str | None  # iss product set-url: a base, + the repository's label
    cdn_url: str | None  # iss organization set-cdn: Red Hat repositories only, + relative_path
    relative_path: str  # a Red Hat repository's path under the CDN (repos/<product>/<repository>)


def effective_sync_url(loc: SyncLocation) -> tuple[str | None, str]:
    """(url, where it comes from). The most specific setting wins: the repository's own override,
    then its product's, then (Red Hat only) the organization's CDN, then the upstream URL."""
    if loc.repository_override:
        return loc.repository_override, "repository override"
    if loc.product_override:
        return join_url(loc.product_override, loc.label), "product override"
    if loc.redhat and loc.cdn_url:
        return join_url(loc.cdn_url, loc.relative_path), "organization CDN"
    if loc.upstream:
        return loc.upstream, "upstream"
    return None, "none"


def _normalized(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    path = posixpath.normpath(unquote(parts.path) or "/")
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return parts.scheme.lower(), netloc.lower(), path


def is_under(url: str, base: str) -> bool:
    """url is base or a path below it (same scheme and host; '..' and %-escapes resolved first)."""
    try:
        scheme, host, path = _normalized(url)
        b_scheme, b_host, b_path = _normalized(base)
    except ValueError:
        return False
    if (scheme, host) != (b_scheme, b_host):
        return False
    return path == b_path or path.startswith(b_path.rstrip("/") + "/")


@dataclass(frozen=True)
class RedHatSource:
    url: str
    what: str  # said in the error: "the organization's CDN URL", "Red Hat repository rhel-9/baseos", ...


def red_hat_source_of(url: str, sources: Iterable[RedHatSource]) -> RedHatSource | None:
    return next((s for s in sources if is_under(url, s.url)), None)


def refuse_red_hat_url(repository: str, url: str, sources: Iterable[RedHatSource], option: str = "--url") -> None:
    """RejectedInput (exit 3) when the custom repository `repository` would sync Red Hat content."""
    source = red_hat_source_of(url, sources)
    if source is not None:
        raise RejectedInput(
            f"{option} '{url}' for custom repository '{repository}' is Red Hat content ({source.what}: "
            f"{source.url}): a custom product never receives Red Hat content; nothing was changed "
            "(point it at a custom repository's location)"
        )


@dataclass(frozen=True)
class IncomingPackage:
    name: str  # what the error shows (a file name or a bundle path)
    sha256: str


def red_hat_packages_refused(
    target: str, incoming: Sequence[IncomingPackage], red_hat_holders: Mapping[str, str]
) -> list[str]:
    """Problems for each package whose sha256 a Red Hat repository of the organization holds.

    The sha256 test is exact and cheap: a package that came from a Red Hat repository is that
    repository's bytes. (An RPM's vendor or signature header would also catch a Red Hat package the
    organization never synchronized, but it is self-declared and costs reading every header.)"""
    return [
        f"{p.name} (sha256 {p.sha256[:12]}...) belongs to Red Hat repository {red_hat_holders[p.sha256.lower()]}: "
        f"it cannot go into the custom repository '{target}'"
        for p in incoming
        if p.sha256.lower() in red_hat_holders
    ]


def parse_url_rewrite(text: str) -> tuple[str, str]:
    """FROM=TO for --url-rewrite: both non-empty; TO must be a URL iss can sync from."""
    if "=" not in text:
        raise UsageError(f"--url-rewrite '{text}' is not FROM=TO (for example https://cdn.example.com=file:///srv)")
    old, new = text.split("=", 1)
    if not old or not new:
        raise UsageError(f"--url-rewrite '{text}': both FROM and TO must be given (FROM=TO)")
    check_sync_url(new, "--url-rewrite TO")
    return old, new


def rewrite_url(url: str, rules: Sequence[tuple[str, str]]) -> str:
    """The first rule whose FROM is a prefix of url replaces that prefix."""
    for old, new in rules:
        if url.startswith(old):
            return new + url[len(old) :]
    return url
