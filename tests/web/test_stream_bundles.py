"""GET /api/v1/bundles/stream: a bundle made on the fly from the store (tar, tar.gz, ranges),
authorized by a subscribed destination's signed request (path and query)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import urllib.parse

import pytest
from fastapi.testclient import TestClient

from consumers.demo import ORG, make_server, prepare_destination, prepare_source
from iss_plugin.adapters.bundles import request_signing
from iss_plugin.adapters.bundles.signing import Signer
from iss_plugin.services import catalog, subscriptions
from iss_plugin.web.app import create_app
from tests.integration.propagation.conftest import ACTOR, add_subscriber, publish

PATH = "/api/v1/bundles/stream"


@pytest.fixture
def pair(tmp_path):
    src = make_server(tmp_path, "source")
    dst = make_server(tmp_path, "destination")
    prepare_source(src, tmp_path / "rpms", 3, ACTOR)
    prepare_destination(dst, src, tmp_path, ACTOR)
    add_subscriber(src, dst, tmp_path)
    publish(src)
    try:
        with TestClient(create_app(src)) as client:
            yield src, dst, client
    finally:
        src.close()
        dst.close()


def get(client, signer, server_id, headers=None, **params):
    query = urllib.parse.urlencode({"organization": ORG, "content_view": "base", **params})
    auth = request_signing.authorization(signer, server_id, "GET", f"{PATH}?{query}")
    return client.get(f"{PATH}?{query}", headers={"Authorization": auth, **(headers or {})})


def names(body: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        return [m.name for m in tar if m.isfile()]


def test_the_tar_holds_the_signed_manifest_first_then_metadata_then_packages(pair):
    src, dst, client = pair
    r = get(client, dst.signer, dst.server_id, version="1.0")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-tar"
    assert int(r.headers["content-length"]) == len(r.content)
    files = names(r.content)
    assert files[:2] == ["manifest.json", "manifest.json.sig"]
    rpms = [i for i, n in enumerate(files) if n.endswith(".rpm")]
    assert rpms and rpms == list(range(rpms[0], len(files)))  # package files come last
    manifest = json.loads(tarfile.open(fileobj=io.BytesIO(r.content)).extractfile("manifest.json").read())
    assert manifest["destination"] == dst.server_id
    assert sorted(f["path"] for f in manifest["files"]) == sorted(files[2:])
    assert not any((src.settings.data_dir / "staging").iterdir())  # the staged repodata is gone


def test_the_same_plan_gives_the_same_bytes_so_a_range_resumes(pair):
    _src, dst, client = pair
    whole = get(client, dst.signer, dst.server_id, version="1.0")
    again = get(client, dst.signer, dst.server_id, version="1.0")
    assert again.headers["etag"] == whole.headers["etag"] and again.content == whole.content
    etag = whole.headers["etag"]
    part = get(client, dst.signer, dst.server_id, {"Range": "bytes=5000-", "If-Range": etag}, version="1.0")
    assert part.status_code == 206 and part.content == whole.content[5000:]
    assert part.headers["content-range"] == f"bytes 5000-{len(whole.content) - 1}/{len(whole.content)}"
    stale = get(client, dst.signer, dst.server_id, {"Range": "bytes=5000-", "If-Range": '"other"'}, version="1.0")
    assert stale.status_code == 200 and stale.content == whole.content
    outside = get(client, dst.signer, dst.server_id, {"Range": f"bytes={len(whole.content)}-"}, version="1.0")
    assert outside.status_code == 416


def test_an_incremental_stream_sends_only_what_the_base_lacks_and_nothing_for_the_base_itself(pair):
    src, dst, client = pair

    full = names(get(client, dst.signer, dst.server_id, version="1.0").content)
    publish(src)  # 2.0: the same packages
    inc = get(client, dst.signer, dst.server_id, version="2.0", base="1.0")
    assert inc.status_code == 200
    assert not [n for n in names(inc.content) if n.endswith(".rpm")] and [n for n in full if n.endswith(".rpm")]
    assert get(client, dst.signer, dst.server_id, version="2.0", base="2.0").status_code == 204


def test_tgz_is_a_gzip_of_the_same_bundle(pair):
    _src, dst, client = pair
    r = get(client, dst.signer, dst.server_id, version="1.0", format="tgz")
    assert r.status_code == 200 and r.headers["accept-ranges"] == "none"
    assert names(gzip.decompress(r.content)) == names(get(client, dst.signer, dst.server_id, version="1.0").content)


def test_unsigned_stranger_stale_replayed_or_unsubscribed_requests_get_no_data(pair):
    src, dst, client = pair
    query = urllib.parse.urlencode({"organization": ORG, "content_view": "base", "version": "1.0"})
    r = client.get(f"{PATH}?{query}")
    assert r.status_code == 401 and "manifest" not in r.text
    assert get(client, Signer.generate(), dst.server_id, version="1.0").status_code == 401
    assert get(client, dst.signer, "nobody-here", version="1.0").status_code == 401
    # a header signed for one query does not open another
    signed = request_signing.authorization(dst.signer, dst.server_id, "GET", f"{PATH}?{query}")
    other = query.replace("1.0", "2.0")
    assert client.get(f"{PATH}?{other}", headers={"Authorization": signed}).status_code == 401
    west = Signer.generate()
    subscriptions.add_destination(src.uow(), "west", "west-1", west.public_pem, ACTOR)
    r = get(client, west, "west-1", version="1.0")
    assert r.status_code == 403 and "not subscribed" in r.json()["message"]


def test_a_user_token_needs_export_content_in_the_organization(pair):
    from tests.web.conftest import tokens_for

    src, _dst, client = pair
    catalog.create_organization(src.uow(), "Other Corp", "OTHER", ACTOR)
    tokens = tokens_for(src)
    query = urllib.parse.urlencode({"organization": ORG, "content_view": "base", "version": "1.0"})

    def as_user(user: str):
        return client.get(f"{PATH}?{query}", headers={"Authorization": f"Bearer {tokens[user]}"})

    ok = as_user("exporter")
    assert ok.status_code == 200 and names(ok.content)[0] == "manifest.json"
    for user in ("viewer", "importer", "other"):
        r = as_user(user)
        assert r.status_code == 403 and "manifest" not in r.text, user
    assert client.get(f"{PATH}?{query}", headers={"Authorization": "Bearer not-a-token"}).status_code == 401


def test_a_repository_streams_from_a_repository_version(pair):
    from tests.web.conftest import tokens_for

    src, _dst, client = pair
    catalog.create_organization(src.uow(), "Other Corp", "OTHER", ACTOR)
    auth = {"Authorization": f"Bearer {tokens_for(src)['exporter']}"}
    params = {"organization": ORG, "product": "acme-tools", "repository": "utils"}
    r = client.get(PATH, params=params, headers=auth)
    assert r.status_code == 200, r.text
    manifest = json.loads(tarfile.open(fileobj=io.BytesIO(r.content)).extractfile("manifest.json").read())
    assert manifest["scope"] == "repository" and manifest["kind"] == "full"
    latest = manifest["repositories"][0]["target"]["version"]
    assert client.get(PATH, params={**params, "base": str(latest)}, headers=auth).status_code == 204
    both = client.get(PATH, params={**params, "content_view": "base"}, headers=auth)
    assert both.status_code == 400 and "not both" in both.json()["message"]
