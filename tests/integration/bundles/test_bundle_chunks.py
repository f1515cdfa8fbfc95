"""Chunked bundles: every chunk checked against <name>.toc.json before anything is read."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest

from iss_plugin.adapters.bundles.reader import open_bundle, verify_bundle
from iss_plugin.domain.errors import BundleIntegrityError, UsageError

from .conftest import ORG, build, snapshot

CHUNK = 8192


@pytest.fixture(params=["tgz", "iso"])
def media(request, sandbox, signer) -> tuple[Path, list[Path], str]:
    """A chunked bundle on 'media': (first chunk, chunks in order, archive name)."""
    output, _ = build(sandbox / "media", signer, request.param, CHUNK)
    chunks = output.files[:-1]
    assert len(chunks) >= 4
    return output.path, chunks, chunks[0].name[:-4]


def refused(sandbox: Path, first: Path) -> BundleIntegrityError:
    before = snapshot(sandbox)
    with pytest.raises(BundleIntegrityError) as e:
        open_bundle(first, sandbox / "work")
    assert snapshot(sandbox) == before
    return e.value


def test_reads_from_the_first_chunk_or_the_toc(sandbox, trusted, media):
    first, _chunks, _archive = media
    for given in (first, first.parent / "bundle.toc.json"):
        with open_bundle(given, sandbox / "work") as opened:
            assert opened.chunked
            verify_bundle(opened, trusted, ORG)


def test_missing_chunk(sandbox, media):
    first, chunks, archive = media
    chunks[2].unlink()
    e = refused(sandbox, first)
    assert e.message == f"chunked bundle {archive} is incomplete or damaged"
    assert e.problems == [f"{chunks[2].name}: missing (chunk 3 of {len(chunks)})"]


def test_missing_last_chunk(sandbox, media):
    first, chunks, _archive = media
    chunks[-1].unlink()
    assert refused(sandbox, first).problems == [f"{chunks[-1].name}: missing (chunk {len(chunks)} of {len(chunks)})"]


def test_reordered_chunks(sandbox, media):
    first, chunks, _archive = media
    # two full-size chunks with different bytes (an ISO starts with identical zero-filled sectors)
    a, b = next((x, y) for x, y in itertools.pairwise(chunks) if x.read_bytes() != y.read_bytes())
    swap = a.with_name("swap")
    a.rename(swap), b.rename(a), swap.rename(b)
    e = refused(sandbox, first)
    assert [p.split(":")[0] for p in e.problems] == [a.name, b.name]
    assert all("does not match the table of contents" in p and "reordered" in p for p in e.problems)


def test_renamed_chunk_is_missing_and_extra(sandbox, media):
    first, chunks, archive = media
    renamed = chunks[1].with_name(f"{archive}.{len(chunks) + 5:03d}")
    chunks[1].rename(renamed)
    e = refused(sandbox, first)
    assert e.problems == [
        f"{chunks[1].name}: missing (chunk 2 of {len(chunks)})",
        f"{renamed.name}: not listed in bundle.toc.json (an extra or renamed chunk)",
    ]


def test_extra_chunk(sandbox, media):
    first, chunks, archive = media
    extra = chunks[0].with_name(f"{archive}.{len(chunks):03d}")
    extra.write_bytes(b"more")
    assert refused(sandbox, first).problems == [
        f"{extra.name}: not listed in bundle.toc.json (an extra or renamed chunk)"
    ]


def test_corrupted_chunk(sandbox, media):
    first, chunks, _archive = media
    data = bytearray(chunks[1].read_bytes())
    data[100] ^= 0x01
    chunks[1].write_bytes(bytes(data))
    e = refused(sandbox, first)
    assert len(e.problems) == 1 and e.problems[0].startswith(f"{chunks[1].name}: sha256 ")


def test_truncated_chunk(sandbox, media):
    first, chunks, _archive = media
    chunks[0].write_bytes(chunks[0].read_bytes()[:1000])
    assert refused(sandbox, first).problems == [
        f"{chunks[0].name}: 1000 bytes, the table of contents says {CHUNK} (truncated, reordered or replaced)"
    ]


def test_missing_or_tampered_toc(sandbox, media):
    first, _chunks, _archive = media
    toc = first.parent / "bundle.toc.json"
    doc = json.loads(toc.read_text())
    doc["chunks"][0]["name"] = "../../etc/passwd"
    doc["chunk_size"] = -1
    toc.write_text(json.dumps(doc))
    e = refused(sandbox, first)
    assert e.message == "bundle.toc.json is not a valid table of contents (schemas/bundle/toc.v1.json)"
    assert any(p.startswith("chunk_size: -1") for p in e.problems)
    assert any(p.startswith("chunks/0/name: '../../etc/passwd'") for p in e.problems)
    toc.unlink()
    assert refused(sandbox, first).message == (
        "bundle.toc.json is missing: a chunked bundle needs its table of contents beside the chunks"
    )


def test_toc_that_lists_chunks_out_of_order(sandbox, media):
    first, chunks, _archive = media
    toc = first.parent / "bundle.toc.json"
    doc = json.loads(toc.read_text())
    doc["chunks"][1], doc["chunks"][2] = doc["chunks"][2], doc["chunks"][1]
    toc.write_text(json.dumps(doc))
    e = refused(sandbox, first)
    assert f"chunks/1: named '{chunks[2].name}', expected '{chunks[1].name}'" in e.problems


def test_only_the_first_chunk_opens_a_bundle(sandbox, media):
    _first, chunks, _archive = media
    with pytest.raises(UsageError, match="is not the first chunk"):
        open_bundle(chunks[1], sandbox / "work")


def test_chunks_copied_elsewhere_still_read(sandbox, trusted, media):
    first, _chunks, _archive = media
    moved = sandbox / "usb"
    shutil.copytree(first.parent, moved)
    with open_bundle(moved / first.name, sandbox / "work") as opened:
        verify_bundle(opened, trusted, ORG)
