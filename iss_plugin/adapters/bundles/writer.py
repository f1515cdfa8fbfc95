"""The bundle writer: seal a staged tree (manifest + signature) and write it as a directory,
a .tar.gz, an ISO, or chunks of either (DESIGN §6).

The export service stages the bundle inside the output directory, then calls
`finalize_bundle`:

    staging = out_dir / f".tmp-{bundle_id}"          # repos/<product>/<repo>/..., products.csv
    output = finalize_bundle(staging, manifest, signer, known_files,
                             out_dir=out_dir, name=name, fmt="tgz", chunk_size=None)

`finalize_bundle(staging, manifest, signer, known_files, *, out_dir, name, fmt, chunk_size=None,
progress=None, compresslevel=6, validate=True, sources=None, link_sources=True) -> BundleOutput`
`seal_manifest(manifest, signer, files, *, validate=True) -> (manifest, manifest_bytes, signature)`
`manifest_bytes(manifest) -> bytes` (the canonical manifest.json)

- `known_files`: FileEntry values (paths relative to `staging`) whose sha256 the caller already
  knows (the content backend's export). Their sizes are checked against the disk; every other
  regular file under `staging` is hashed. A symlink or special file in `staging` is an error.
- `sources`: {path: file} for known files that are NOT under `staging` (a content store's own,
  read-only files). An archive reads them where they are (checking each size as it reads); a
  directory bundle gets hard links to them (`link_sources` and the same file system) or copies.
- The manifest gets `files` (sorted by path) and `source_key_fingerprint` (the signer's), is
  checked against schemas/bundle/manifest.v1.json plus the cross-reference checks (`validate`;
  the file list with equivalent fast checks), and is written canonically
  (`json.dumps(to_dict(), sort_keys=True, separators=(",", ":"))`) as manifest.json, with manifest.json.sig
  (base64 Ed25519 signature of exactly those bytes, newline-terminated) beside it.
- fmt "dir": `staging` is renamed to `out_dir/name` (no copy). "tgz": `out_dir/name.tar.gz`,
  manifest.json first in the archive. "iso": `out_dir/name.iso` (Rock Ridge + Joliet).
  With `chunk_size` (bytes) the tar.gz (for "dir" too) or ISO byte stream is split into
  `name.tar.gz.000`, `.001`, ... (`name.iso.000`, ...) plus `name.toc.json`.
- Output is written under temporary names in `out_dir` and renamed at the end; an existing
  bundle of the same name is never overwritten. On ANY failure, partial output and `staging`
  are removed. On success `staging` is gone too (renamed, or removed after archiving).
- `progress(n)` is called with increments of bytes processed (hashed, archived or mastered).

The tar.gz is built from a stream of entries (`stream.bundle_entries` -> `stream.write_tar_gz`, or
`stream.tar_gz_stream` for any other sink), so the same code can feed an HTTP response without a
full export on disk.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Literal

import schemas
from iss_plugin.domain.errors import IssError, UsageError
from iss_plugin.domain.manifest import MANIFEST_NAME, SIGNATURE_NAME, BundleManifest, FileEntry
from schemas import JSONObject

from .checks import (
    RESERVED,
    file_value_problems,
    manifest_consistency_problems,
    path_problem,
    plainly_safe_paths,
)
from .chunks import MIN_CHUNK_SIZE, SplitWriter, chunk_names, toc_document
from .materialize import Materializer
from .signing import Signer
from .stream import BY_PATH, DEFAULT_COMPRESSLEVEL, Entry, bundle_entries, write_tar_gz

Format = Literal["dir", "tgz", "iso"]
MANIFEST_SCHEMA = "bundle/manifest.v1.json"
_HASH_READ = 1024 * 1024
_WRITE_BUFFER = 1024 * 1024
_FILE_JSON = '{"path":%s,"sha256":%s,"size":%s}'  # keys in sorted order; %s of an int is its JSON
_json_string = json.encoder.encode_basestring_ascii  # what json.dumps uses (ensure_ascii)
_FILES_PER_WRITE = 1000


@dataclass(frozen=True)
class BundleOutput:
    """What was written. `path`: the directory, the archive, or the FIRST chunk."""

    path: Path
    files: list[Path]  # everything written, in order (chunks, then the table of contents)
    format: str  # "dir" | "tgz" | "iso" (a chunked "dir" bundle is "tgz")
    size: int  # bytes on disk (a directory: the files in the manifest plus manifest and signature)
    manifest: BundleManifest = field(repr=False)  # as signed, with `files`
    chunked: bool = False
    toc: Path | None = None


def manifest_bytes(manifest: BundleManifest) -> bytes:
    """The canonical manifest.json: the bytes that are signed."""
    return _canonical(_header(manifest), manifest.files)


def _header(manifest: BundleManifest) -> JSONObject:
    """manifest.to_dict() with an empty file list: the files are checked and encoded from the
    FileEntry values themselves (no deep copy by dataclasses.asdict, no dict per file)."""
    return replace(manifest, files=()).to_dict()


def _canonical(header: JSONObject, files: Sequence[FileEntry]) -> bytes:
    """json.dumps(header with `files` as its file list, sort_keys=True, separators=(",", ":")), byte
    for byte, with the file list encoded by format: 3x faster than the encoder's sorting. Every
    piece is ASCII (ensure_ascii), so the file list is encoded batch by batch into one buffer whose
    bytes are returned without a copy: a list of 20,000 strings, their join and its encoding held
    ~10 MB at once, which set the source's peak RSS while it planned a stream (issue 12)."""
    out = io.BytesIO()
    out.write(b"{")
    for n, key in enumerate(sorted({**header, "files": None})):
        out.write((("," if n else "") + _json_string(key) + ":").encode("ascii"))
        if key != "files":
            out.write(json.dumps(header[key], sort_keys=True, separators=(",", ":")).encode("ascii"))
            continue
        out.write(b"[")
        for start in range(0, len(files), _FILES_PER_WRITE):
            text = ",".join(
                _FILE_JSON
                % (
                    _json_string(f.path),
                    _json_string(f.sha256),
                    f.size if type(f.size) is int else json.dumps(f.size),
                )
                for f in files[start : start + _FILES_PER_WRITE]
            )
            out.write((("," if start else "") + text).encode("ascii"))
        out.write(b"]")
    out.write(b"}")
    return out.getvalue()


def seal_manifest(
    manifest: BundleManifest, signer: Signer, files: Iterable[FileEntry], *, validate: bool = True
) -> tuple[BundleManifest, bytes, bytes]:
    """(manifest with `files` sorted and the signer's fingerprint, manifest.json bytes, signature file bytes).

    Also what a streamed bundle (phase 3) needs before its first byte goes out:
        manifest, data, sig = seal_manifest(manifest, signer, files)
        entries = [Entry(MANIFEST_NAME, len(data), data=data), Entry(SIGNATURE_NAME, len(sig), data=sig),
                   *(Entry(f.path, f.size, source=store_path(f)) for f in manifest.files)]
        body = tar_gz_stream(entries)"""
    manifest = replace(manifest, files=tuple(sorted(files, key=BY_PATH)), source_key_fingerprint=signer.fingerprint)
    header = _header(manifest)
    if validate:
        _validate(header, manifest.files)
    data = _canonical(header, manifest.files)
    return manifest, data, signer.sign(data) + b"\n"


def archive_suffix(fmt: Format, chunk_size: int | None) -> str:
    """'' for a directory, '.tar.gz' or '.iso' for an archive (a chunked dir is a tar.gz)."""
    if fmt == "iso":
        return ".iso"
    if fmt == "tgz" or chunk_size:
        return ".tar.gz"
    return ""


def finalize_bundle(
    staging: Path,
    manifest: BundleManifest,
    signer: Signer,
    known_files: Iterable[FileEntry],
    *,
    out_dir: Path,
    name: str,
    fmt: Format,
    chunk_size: int | None = None,
    progress: Callable[[int], None] | None = None,
    compresslevel: int = DEFAULT_COMPRESSLEVEL,
    validate: bool = True,
    sources: Mapping[str, str] | None = None,
    link_sources: bool = True,
) -> BundleOutput:
    staging, out_dir = Path(staging), Path(out_dir)
    sources = sources or {}
    tmp: Path | None = None
    committed: list[Path] = []
    try:
        _check_arguments(name, fmt, chunk_size)
        suffix = archive_suffix(fmt, chunk_size)
        _refuse_existing(out_dir, name, suffix, chunk_size)
        files = _inventory(staging, known_files, sources, progress, check_paths=not validate)
        if suffix == "":
            # the store's files are linked or copied into the tree while the manifest is sealed
            with Materializer(staging, sources, {f.path: f.size for f in files}, link=link_sources) as placing:
                manifest, data, signature = seal_manifest(manifest, signer, files, validate=validate)
                placing.wait()
            content_size = sum(f.size for f in files) + len(data) + len(signature)
            (staging / MANIFEST_NAME).write_bytes(data)
            (staging / SIGNATURE_NAME).write_bytes(signature)
            final = out_dir / name
            _rename_dir(staging, final)
            return BundleOutput(final, [final], "dir", content_size, manifest)

        manifest, data, signature = seal_manifest(manifest, signer, files, validate=validate)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-write-{name}-", dir=out_dir))
        entries = bundle_entries(staging, data, signature, files, sources)
        out_fmt = "iso" if suffix == ".iso" else "tgz"
        archive = name + suffix
        if chunk_size:
            split = SplitWriter(tmp, "part-", chunk_size)
            with io.BufferedWriter(split, _WRITE_BUFFER) as sink:
                _write_archive(out_fmt, entries, sink, manifest, compresslevel, progress)
            parts = split.finish()
            names = chunk_names(archive, len(parts))
            toc = toc_document(
                name,
                manifest.bundle_id,
                suffix.lstrip("."),
                chunk_size,
                [replace(p, name=n) for p, n in zip(parts, names, strict=False)],
                split.size,
                split.sha256,
            )
            toc_tmp = tmp / "toc.json"
            toc_tmp.write_text(json.dumps(toc, indent=2, sort_keys=True) + "\n")
            for part, final_name in zip(parts, names, strict=False):
                committed.append(_rename_new(tmp / part.name, out_dir / final_name))
            committed.append(_rename_new(toc_tmp, out_dir / f"{name}.toc.json"))
            result = BundleOutput(
                committed[0], list(committed), out_fmt, split.size, manifest, chunked=True, toc=committed[-1]
            )
        else:
            archive_tmp = tmp / archive
            # the tar.gz writer makes large writes itself (writev on the raw file); pycdlib small ones
            with open(archive_tmp, "xb", buffering=0 if out_fmt == "tgz" else _WRITE_BUFFER) as sink:
                _write_archive(out_fmt, entries, sink, manifest, compresslevel, progress)
                size = sink.tell()
            committed.append(_rename_new(archive_tmp, out_dir / archive))
            result = BundleOutput(committed[0], list(committed), out_fmt, size, manifest)
        shutil.rmtree(tmp)
        shutil.rmtree(staging)
        return result
    except BaseException:
        for path in committed:
            path.unlink(missing_ok=True)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_archive(
    fmt: str,
    entries: Iterable[Entry],
    sink: BinaryIO,
    manifest: BundleManifest,
    compresslevel: int,
    progress: Callable[[int], None] | None,
) -> None:
    if fmt == "iso":
        from .iso import write_iso  # pycdlib: only for an ISO (4 MiB of RSS on every stream)

        write_iso(entries, sink, volume_id=f"ISS_{manifest.bundle_id}", progress=progress)
        return
    write_tar_gz(entries, sink, mtime=_mtime(manifest.created), compresslevel=compresslevel, progress=progress)


def _check_arguments(name: str, fmt: str, chunk_size: int | None) -> None:
    if fmt not in ("dir", "tgz", "iso"):
        raise UsageError(f"unknown bundle format '{fmt}': use dir, tgz or iso")
    if not name or "/" in name or name.startswith(".") or path_problem(name):
        raise UsageError(f"'{name}' cannot name a bundle: use a plain file name that does not start with '.'")
    if chunk_size is not None and chunk_size < MIN_CHUNK_SIZE:
        raise UsageError(f"chunk size {chunk_size} is too small: use at least {MIN_CHUNK_SIZE} bytes")


def _refuse_existing(out_dir: Path, name: str, suffix: str, chunk_size: int | None) -> None:
    candidates = [out_dir / (name + suffix)]
    if chunk_size:
        candidates = [
            out_dir / f"{name}.toc.json",
            *sorted(out_dir.glob(f"{_glob_escape(name + suffix)}.[0-9][0-9][0-9]*")),
        ]
    for path in candidates:
        if path.exists() or path.is_symlink():
            raise UsageError(
                f"{path} already exists: refusing to overwrite a bundle (move it away or pick another name)"
            )


def _inventory(
    staging: Path,
    known_files: Iterable[FileEntry],
    sources: Mapping[str, str],
    progress: Callable[[int], None] | None,
    *,
    check_paths: bool,
) -> tuple[FileEntry, ...]:
    """Every file of the bundle as a FileEntry, sorted by path: the regular files under `staging`
    (known ones trusted for sha256, the rest hashed) and the known files given by `sources`.
    check_paths: check each path here (otherwise only when the fast screen is not sure; the manifest
    validation checks them all again)."""
    known: dict[str, FileEntry] = {}
    problems: list[str] = []
    for f in known_files:
        if f.path in known and known[f.path] != f:
            problems.append(f"{f.path}: listed twice with different checksums or sizes")
        known[f.path] = f
    on_disk: dict[str, int] = {}
    _walk_staging(staging, "", on_disk, problems)
    for path in sorted(set(sources) - set(known)):
        problems.append(f"{path}: given by reference, but its checksum is not known")
    for path in sorted(set(sources) & set(on_disk)):
        problems.append(f"{path}: both in the staging directory and given by reference")
    for path in sorted(set(known) - set(on_disk) - set(sources)):
        problems.append(f"{path}: listed by the export but not in the staging directory")
    for path, size in sorted(on_disk.items()):
        if path in known and known[path].size != size:
            problems.append(f"{path}: {size} bytes on disk, {known[path].size} listed")
    paths = sorted({*on_disk, *sources})
    if check_paths or not plainly_safe_paths(paths):  # before a directory bundle places anything by these paths
        problems += [f"{path}: {reason}" for path in paths if (reason := path_problem(path))]
    if problems:
        raise IssError(f"the staged bundle in {staging} is inconsistent; nothing was written", problems)
    entries = [known[path] for path in sources]
    for path, size in on_disk.items():
        entries.append(known.get(path) or FileEntry(path, _sha256_file(staging / path, progress), size))
    entries.sort(key=BY_PATH)
    return tuple(entries)


def _walk_staging(root: Path, rel: str, out: dict[str, int], problems: list[str]) -> None:
    with os.scandir(root / rel if rel else root) as it:
        for entry in it:
            path = f"{rel}/{entry.name}" if rel else entry.name
            if not rel and entry.name in RESERVED:
                continue  # rewritten by finalize
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                _walk_staging(root, path, out, problems)
            elif stat.S_ISREG(st.st_mode):
                out[path] = st.st_size
            elif stat.S_ISLNK(st.st_mode):
                problems.append(f"{path}: is a symbolic link; bundles hold only regular files")
            else:
                problems.append(f"{path}: is not a regular file; bundles hold only regular files")


def _validate(header: JSONObject, files: Sequence[FileEntry]) -> None:
    """The manifest (its header and its files) against its schema. The file list, which the writer
    built itself from checked paths, is checked by `file_value_problems` (the same rules, ~50x
    faster than jsonschema on thousands of entries); the rest by jsonschema."""
    problems = schemas.problems(MANIFEST_SCHEMA, {**header, "files": []})
    problems += file_value_problems(files)
    if not problems:
        problems = manifest_consistency_problems(header, [f.path for f in files])
    if problems:
        raise IssError(
            f"the manifest of bundle {header['bundle_id']} does not follow schemas/{MANIFEST_SCHEMA}; "
            "nothing was written",
            problems,
        )


def _sha256_file(path: Path, progress: Callable[[int], None] | None) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as fh:
        while block := fh.read(_HASH_READ):
            h.update(block)
            if progress:
                progress(len(block))
    return h.hexdigest()


def _rename_dir(staging: Path, final: Path) -> None:
    if final.exists() or final.is_symlink():
        raise UsageError(f"{final} already exists: refusing to overwrite a bundle")
    try:
        os.rename(staging, final)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        # staging on another file system: copy next to the target, then rename into place
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-copy-{final.name}-", dir=final.parent))
        try:
            shutil.copytree(staging, tmp / "tree", symlinks=True)
            os.rename(tmp / "tree", final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(staging)


def _rename_new(src: Path, dst: Path) -> Path:
    """Rename without replacing: a concurrent writer's bundle is never clobbered."""
    try:
        os.link(src, dst)  # fails with EEXIST instead of replacing
    except FileExistsError:
        raise UsageError(f"{dst} already exists: refusing to overwrite a bundle") from None
    except OSError:
        if dst.exists():
            raise UsageError(f"{dst} already exists: refusing to overwrite a bundle") from None
        os.rename(src, dst)  # file systems without hard links
        return dst
    os.unlink(src)
    return dst


def _mtime(created: str) -> int:
    try:
        return max(0, int(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()))
    except (ValueError, TypeError, OverflowError):
        return 0


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)
