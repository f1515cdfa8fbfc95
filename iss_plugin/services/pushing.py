"""Receiving a pushed bundle (phase 3): an online destination's side of POST /api/v1/imports/push.

The source is identified by the key that signed the request (web/api/push.py checks it against the
trusted sources' keys, by fingerprint); only that source's key may seal the pushed manifest. The
stream is read once and checked while it arrives (stream_reader: the signature before anything
else, each file's sha256 before it is kept), then imported by the same service as any bundle,
atomically. The answer is the data of iss.bundle.imported.v1 or iss.bundle.rejected.v1, exactly
what the import consumer would publish; the source records it as it records those events."""

from __future__ import annotations

from typing import BinaryIO, Literal

from sqlalchemy import select

from iss_plugin.adapters.db.models import TrustedSource
from iss_plugin.adapters.db.uow import UnitOfWork
from iss_plugin.domain import events as ev
from iss_plugin.domain import policy
from iss_plugin.domain.errors import IssError, NotAuthenticated
from iss_plugin.domain.jsontypes import JSONObject
from iss_plugin.domain.trust import organization_map
from iss_plugin.failpoints import failpoint

from . import importing
from .identity import authorize_account
from .propagation import DestinationContext, _imported_answer
from .pulling import PackagesIntoStore, stream_work_dir


def source_key(uow: UnitOfWork, fingerprint: str) -> str:
    """The public key PEM of the trusted source with this key fingerprint; NotAuthenticated if none."""
    with uow:
        pem = uow.session.scalar(select(TrustedSource.public_key).where(TrustedSource.fingerprint == fingerprint))
    if pem is None:
        raise NotAuthenticated(f"no trusted source with key fingerprint '{fingerprint}' is known here")
    return pem


def receive_push(
    uow: UnitOfWork, body: BinaryIO, organization: str, *, fingerprint: str, ctx: DestinationContext, display: str
) -> tuple[Literal["imported", "rejected"], JSONObject]:
    """Import the pushed stream `body` of the source organization `organization`; the answer."""
    from iss_plugin.adapters.bundles.reader import TrustedKey, _check_signature
    from iss_plugin.adapters.bundles.stream_reader import read_tar_stream

    request = importing.ImportRequest(organization, ctx.imports_path, "content_view_version")
    bundle: JSONObject = {}
    try:
        request = importing.ImportRequest(
            importing.mapped_organization(uow, organization), ctx.imports_path, "content_view_version"
        )
        with uow:
            authorize_account(uow, ctx.actor, policy.IMPORT_CONTENT, request.organization)
            t = uow.session.scalar(select(TrustedSource).where(TrustedSource.fingerprint == fingerprint))
            if t is None:
                raise NotAuthenticated(f"no trusted source with key fingerprint '{fingerprint}' is known here")
            stream_dir = stream_work_dir(uow, ctx.imports_path)
            trusted = [
                TrustedKey(
                    t.name, t.public_key, t.fingerprint, tuple(sorted(set(organization_map(t.organizations).values())))
                )
            ]

        into_store = PackagesIntoStore(uow, request.organization)  # a Pulp destination: no bundle on disk

        def seal(manifest: bytes, signature: bytes) -> None:
            _check_signature(manifest, signature, trusted, request.organization)
            bundle.update(_named(manifest))
            failpoint("push.receiving")  # tests: a destination that stops reading mid-body
            into_store.start(manifest)

        try:
            opened = read_tar_stream(body, display, stream_dir, seal=seal, receive=into_store.receive)
            scope: importing.Scope = "repository" if bundle.get("repository") else "content_view_version"
            with opened:
                into_store.hold()
                summary = importing.import_bundle(
                    uow,
                    importing.ImportRequest(request.organization, opened.root, scope, held=opened.held),
                    work_dir=ctx.imports_path,
                    actor=ctx.actor,
                )
        finally:
            into_store.close()
        return "imported", _imported_answer(summary, organization, ctx)
    except IssError as e:
        if e.transient:
            raise
        answer: JSONObject = {
            "bundle_id": bundle.get("bundle_id", "unknown"),
            "source_server": bundle.get("source_server", "unknown"),
            "destination": ctx.server_id,
            "organization": organization,
        }
        named = ("content_view", "version", "product", "repository")
        answer |= {k: bundle[k] for k in named if bundle.get(k)}
        with uow:
            has = (
                importing.destination_holding(
                    uow,
                    request.organization,
                    bundle.get("content_view"),
                    bundle.get("product"),
                    bundle.get("repository"),
                )
                if bundle.get("content_view") or bundle.get("repository")
                else None
            )
            importing.record_rejection_in(uow, request, e, ctx.actor)
            uow.commit()
        return "rejected", answer | {
            "reason": ev.rejection_reason(e),
            "message": e.message[:4000],
            "problems": [p[:4000] for p in e.problems[:1000]],
            "has": has,
        }


def _named(manifest: bytes) -> JSONObject:
    """The ids a rejection answer names, from the (signature-checked) manifest."""
    import json

    try:
        m = json.loads(manifest)
        cv = m.get("content_view") or {}
        named: JSONObject = {"bundle_id": str(m["bundle_id"]), "source_server": str(m["source_server"])}
        if cv:
            named |= {"content_view": str(cv["label"]), "version": str(cv["version"])}
        elif m.get("scope") == "repository" and m.get("repositories"):
            repo = m["repositories"][0]
            named |= {"product": str(repo["product"]), "repository": str(repo["label"])}
        return named
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}
