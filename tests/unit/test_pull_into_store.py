"""Which package files of a pulled stream go straight into the content store (pulling.PackagesIntoStore):
only with a backend that takes them one at a time (ReceivesPackages), only package files inside a
repository's tree, and not when GPG keys are involved (the import checks signatures on the files)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from consumers.demo import make_server
from iss_plugin.adapters.db.models import Product
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.services import catalog
from iss_plugin.services.pulling import PackagesIntoStore

ACTOR = "test"


class Receiver:
    def __init__(self, expected) -> None:
        self.expected, self.put_calls = sorted(expected), []

    def put(self, repo: str, path: Path, sha256: str) -> None:
        self.put_calls.append((repo, path.name, sha256))

    def hold(self) -> None: ...

    def close(self) -> None: ...


class TakesPackages:
    """A content backend that takes package files one at a time (the Pulp backend's protocol)."""

    name = "takes-packages"

    def __init__(self) -> None:
        self.receivers: list[Receiver] = []

    def package_receiver(self, expected=()) -> Receiver:
        self.receivers.append(Receiver(expected))
        return self.receivers[-1]


def manifest(gpg_key: str | None = None) -> bytes:
    return json.dumps(
        {
            "products": [{"label": "tools", "gpg_key": gpg_key}],
            "repositories": [{"product": "tools", "label": "utils", "path": "repos/tools/utils"}],
            "files": [
                {"path": "repos/tools/utils/Packages/a/a.rpm", "sha256": "aa", "size": 1},
                {"path": "repos/tools/utils/repodata/repomd.xml", "sha256": "bb", "size": 1},
                {"path": "elsewhere/b.rpm", "sha256": "cc", "size": 1},
            ],
        }
    ).encode()


def setup(tmp_path, backend):
    app = make_server(tmp_path, "destination")
    catalog.create_organization(app.uow(), "ACME", "ACME", ACTOR)
    catalog.create_product(app.uow(), "ACME", "Tools", "tools", False, None, ACTOR)
    return app, UnitOfWork(app.session_factory, lambda _session: backend)


def test_package_files_of_a_repository_tree_go_to_a_receiving_backend(tmp_path):
    backend = TakesPackages()
    _app, uow = setup(tmp_path, backend)
    into = PackagesIntoStore(uow, "ACME")
    into.start(manifest())
    assert [r.expected for r in backend.receivers] == [["aa"]]
    f = tmp_path / "a.rpm"
    assert into.receive("repos/tools/utils/Packages/a/a.rpm", f, "aa") is True
    assert into.receive("repos/tools/utils/repodata/repomd.xml", f, "bb") is False
    assert into.receive("elsewhere/b.rpm", f, "cc") is False
    assert backend.receivers[0].put_calls == [("ACME/tools/utils", "a.rpm", "aa")]


def test_not_when_gpg_keys_are_involved_nor_for_other_backends_nor_a_malformed_manifest(tmp_path):
    backend = TakesPackages()
    app, uow = setup(tmp_path, backend)
    for body in (manifest(gpg_key="-----BEGIN PGP PUBLIC KEY BLOCK-----"), b"[]", b'{"products": 1}'):
        into = PackagesIntoStore(uow, "ACME")
        into.start(body)
        assert into.receive("repos/tools/utils/Packages/a/a.rpm", tmp_path / "a.rpm", "aa") is False
    with app.session_factory() as s:
        s.scalars(select(Product).where(Product.label == "tools")).one().gpg_key = "armored"
        s.commit()
    into = PackagesIntoStore(uow, "ACME")
    into.start(manifest())
    assert into.receive("repos/tools/utils/Packages/a/a.rpm", tmp_path / "a.rpm", "aa") is False
    assert backend.receivers == []

    local = PackagesIntoStore(app.uow(), "ACME")  # the local store: files stay on disk, as before
    local.start(manifest())
    assert local.receive("repos/tools/utils/Packages/a/a.rpm", tmp_path / "a.rpm", "aa") is False
