"""Destination-side content management through the CLI: Red Hat repository sets, Red Hat content
kept out of custom products (import, upload, sync URL), sync URL overrides, the products CSV."""

from __future__ import annotations

import csv
from pathlib import Path

from sqlalchemy import select

from .conftest import CUSTOM, RH, make_destination
from .servers import Server
from .test_cli_errors import fails

ORG = ("--organization", "ACME")


def export_repository(source: Server, product: str, repository: str) -> str:
    r = source.json("content-export", "complete", "repository", *ORG, "--product", product, "--repository", repository)
    return r["path"]


def import_repository(dest: Server, path: str, expect: int = 0) -> dict:
    return dest.json("content-import", "repository", *ORG, "--path", path, expect=expect)


def sets(server: Server) -> list[dict]:
    return server.json("repository-set", "list", *ORG)


def repositories(server: Server) -> set[str]:
    return {f"{r['product']}/{r['label']}" for r in server.json("repository", "list", *ORG)}


def db_rows(server: Server, model) -> list:
    from iss_plugin.bootstrap import App
    from iss_plugin.settings import load_settings

    app = App(load_settings(server.config))
    try:
        with app.session_factory() as s:
            return list(s.scalars(select(model)))
    finally:
        app.close()


def audit_actions(server: Server) -> list[tuple[str, str, dict]]:
    from iss_plugin.adapters.db.models import AuditLog

    return [(a.action, a.target, a.details) for a in db_rows(server, AuditLog)]


# --- 5. Red Hat repository sets ------------------------------------------------------------------


def test_repository_sets_offer_only_imported_entitled_red_hat_repositories(published_source, destination):
    assert sets(destination) == []
    destination.run("repository", "create", *ORG, "--product", RH, "--name", "local")  # Red Hat, not imported
    import_repository(destination, export_repository(published_source, RH, "baseos"))
    import_repository(destination, export_repository(published_source, CUSTOM, "utils"))  # custom: never offered
    listed = sets(destination)
    assert [(s["product"], s["repository"], s["enabled"]) for s in listed] == [(RH, "baseos", True)]
    assert listed[0]["content_id"] == "rh-479"

    # a set whose content id the manifest does not cover is not offered, and cannot be enabled
    from iss_plugin.adapters.db.content_models import RepositorySet
    from iss_plugin.bootstrap import App
    from iss_plugin.settings import load_settings

    app = App(load_settings(destination.config))
    try:
        with app.session_factory() as s:
            org_id = s.scalars(select(RepositorySet.organization_id)).first()
            s.add(
                RepositorySet(
                    organization_id=org_id,
                    product_label="rhel-8",
                    content_id="rh-999",
                    repository_label="appstream",
                    name="appstream",
                    content_type="yum",
                    relative_path="repos/rhel-8/appstream",
                    backend_key="ACME/rhel-8/appstream",
                )
            )
            s.commit()
    finally:
        app.close()
    assert [s["repository"] for s in sets(destination)] == ["baseos"]
    fails(
        destination,
        2,
        "repository-set",
        "enable",
        *ORG,
        "--product",
        "rhel-8",
        "--repository",
        "appstream",
        needles=("rhel-8/appstream", "content id rh-999", "not covered by", "entitlement manifest"),
    )


def test_disable_then_enable_keeps_the_imported_content(published_source, destination):
    import_repository(destination, export_repository(published_source, RH, "baseos"))
    info = destination.json("repository", "info", *ORG, "--repository", f"{RH}/baseos")
    assert info["package_count"] == 8

    r = destination.json("repository-set", "disable", *ORG, "--product", RH, "--repository", "baseos")
    assert r["enabled"] is False and r["changed"] is True
    assert f"{RH}/baseos" not in repositories(destination)
    assert sets(destination)[0]["enabled"] is False
    again = destination.json("repository-set", "disable", *ORG, "--product", RH, "--repository", "baseos")
    assert again["changed"] is False

    r = destination.json("repository-set", "enable", *ORG, "--product", RH, "--repository", "baseos")
    assert r["enabled"] is True and r["changed"] is True
    back = destination.json("repository", "info", *ORG, "--repository", f"{RH}/baseos")
    assert (back["package_count"], back["package_set_digest"]) == (8, info["package_set_digest"])
    assert back["published_at"]
    actions = [a for a, _, _ in audit_actions(destination)]
    assert "repository_set.disable" in actions and "repository_set.enable" in actions


def test_repository_set_errors_name_the_repository_and_why(published_source, destination):
    import_repository(destination, export_repository(published_source, RH, "baseos"))
    import_repository(destination, export_repository(published_source, CUSTOM, "utils"))
    before = sets(destination)
    for product, repo in ((RH, "nope"), (CUSTOM, "utils")):
        out = fails(
            destination,
            2,
            "repository-set",
            "enable",
            *ORG,
            "--product",
            product,
            "--repository",
            repo,
            needles=(f"'{product}/{repo}'", "did not arrive in any bundle", f"offered: {RH}/baseos"),
        )
        assert out
    assert sets(destination) == before


def test_a_repository_in_an_imported_content_view_version_cannot_be_disabled(published_source, destination):
    full = published_source.json("content-export", "complete", "version", *ORG, "--content-view", "base")
    destination.json("content-import", "version", *ORG, "--path", full["path"])
    assert [(s["repository"], s["enabled"]) for s in sets(destination)] == [("baseos", True)]
    fails(
        destination,
        2,
        "repository-set",
        "disable",
        *ORG,
        "--product",
        RH,
        "--repository",
        "baseos",
        needles=("cannot be disabled", "content view base version 1.0"),
    )


# --- 5. custom products never receive Red Hat content ----------------------------------------------


def test_import_of_red_hat_packages_into_a_custom_product_is_refused(tmp_path, source, rpms):
    """The source put the same RPMs into its custom repository before its Red Hat one had them."""
    files = [str(f) for f in rpms("shared", 3, "shared-pkg")]
    for product, repo in ((CUSTOM, "utils"), (RH, "baseos")):
        source.run("repository", "create", *ORG, "--product", product, "--name", repo)
        source.run("repository", "upload", *ORG, "--repository", f"{product}/{repo}", *files)
    dest = make_destination(tmp_path, source)
    import_repository(dest, export_repository(source, RH, "baseos"))
    bundle = export_repository(source, CUSTOM, "utils")
    before = dest.state()
    r = import_repository(dest, bundle, expect=3)
    assert r["reason"] == "rule_violation"
    text = "\n".join(r["problems"])
    assert "shared-pkg" in text and f"{RH}/baseos" in text and f"{CUSTOM}/utils" in text, text
    assert "custom repositories" in r["message"]
    assert dest.state() == before


def test_upload_of_a_red_hat_package_into_a_custom_repository_is_refused(published_source, destination, rpms):
    import_repository(destination, export_repository(published_source, RH, "baseos"))
    destination.run("product", "create", *ORG, "--name", "Tools", "--label", CUSTOM)
    destination.run("repository", "create", *ORG, "--product", CUSTOM, "--name", "mine")
    red_hat_rpm = next(Path(published_source.data, "exports").rglob("*.rpm"))
    own = rpms("own", 1, "own-pkg")[0]
    fails(
        destination,
        3,
        "repository",
        "upload",
        *ORG,
        "--repository",
        f"{CUSTOM}/mine",
        str(own),
        str(red_hat_rpm),
        needles=(red_hat_rpm.name, f"Red Hat repository {RH}/baseos", f"'{CUSTOM}/mine'", "nothing was uploaded"),
    )
    ok = destination.json("repository", "upload", *ORG, "--repository", f"{CUSTOM}/mine", str(own))
    assert ok["changed"] is True  # custom packages still go in
    # a Red Hat repository takes it (the rule is about custom products)
    destination.run("repository", "create", *ORG, "--product", RH, "--name", "extra")
    destination.run("repository", "upload", *ORG, "--repository", f"{RH}/extra", str(red_hat_rpm))


def test_sync_urls_that_are_red_hat_sources_are_refused_for_custom_repositories(published_source, destination):
    bundle = export_repository(published_source, RH, "baseos")
    import_repository(destination, bundle)
    destination.run("product", "create", *ORG, "--name", "Tools", "--label", CUSTOM)
    destination.run("repository", "create", *ORG, "--product", CUSTOM, "--name", "mine")
    destination.run("organization", "set-cdn", *ORG, "--url", "https://cdn.example.com/exports/")
    destination.run("repository", "set-url", *ORG, "--repository", f"{RH}/baseos", "--url", "http://rh.example/b/")
    bundle_rh = Path(bundle).resolve().as_uri() + f"/repos/{RH}/baseos/"
    cases = [
        ("https://cdn.example.com/exports/repos/tools/x/", "the organization's CDN URL"),
        ("http://rh.example/b/", f"Red Hat repository {RH}/baseos"),
        ("http://rh.example/b/sub/", f"Red Hat repository {RH}/baseos"),
        (bundle_rh, "of a bundle"),
    ]
    for url, why in cases:
        needles = (url, f"custom repository '{CUSTOM}/mine'", why, "never receives Red Hat content")
        fails(
            destination,
            3,
            "repository",
            "set-url",
            *ORG,
            "--repository",
            f"{CUSTOM}/mine",
            "--url",
            url,
            needles=needles,
        )
        fails(
            destination,
            3,
            "repository",
            "synchronize",
            *ORG,
            "--repository",
            f"{CUSTOM}/mine",
            "--url",
            url,
            needles=needles,
        )
        fails(
            destination,
            3,
            "repository",
            "create",
            *ORG,
            "--product",
            CUSTOM,
            "--name",
            "n",
            "--url",
            url,
            needles=(url,),
        )
        fails(destination, 3, "product", "set-url", *ORG, "--product", CUSTOM, "--url", url, needles=(url.rstrip("/"),))
    # a custom repository set earlier, whose URL later became Red Hat's (the CDN moved), is refused at sync time
    destination.run("repository", "set-url", *ORG, "--repository", f"{CUSTOM}/mine", "--url", "file:///srv/later/x/")
    destination.run("organization", "set-cdn", *ORG, "--url", "file:///srv/later/")
    fails(destination, 3, "repository", "synchronize", *ORG, "--repository", f"{CUSTOM}/mine", needles=("CDN",))
    # the export location of the source's own Red Hat bundles is a Red Hat source there too
    published_source.run("repository", "create", *ORG, "--product", CUSTOM, "--name", "mine")
    src_rh = Path(bundle).resolve().as_uri() + f"/repos/{RH}/baseos/"
    fails(
        published_source,
        3,
        "repository",
        "set-url",
        *ORG,
        "--repository",
        f"{CUSTOM}/mine",
        "--url",
        src_rh,
        needles=("of export",),
    )


# --- 6. sync location overrides --------------------------------------------------------------------


def urls(server: Server, path: str) -> dict:
    return server.json("repository", "urls", *ORG, "--repository", path)[0]


def test_repository_product_and_cdn_overrides_and_reset(source):
    source.run(
        "repository", "create", *ORG, "--product", RH, "--name", "baseos", "--url", "https://cdn.rh/rhel9/baseos/"
    )
    source.run(
        "repository", "create", *ORG, "--product", CUSTOM, "--name", "utils", "--url", "https://m.example/t/utils/"
    )
    source.run(
        "repository", "create", *ORG, "--product", CUSTOM, "--name", "more", "--url", "https://m.example/t/more/"
    )
    u = urls(source, f"{CUSTOM}/utils")
    assert (u["effective_url"], u["effective_from"]) == ("https://m.example/t/utils/", "upstream")

    r = source.json("repository", "set-url", *ORG, "--repository", f"{CUSTOM}/utils", "--url", "file:///srv/utils/")
    assert r["effective_url"] == "file:///srv/utils/" and r["repository_override"] == "file:///srv/utils/"
    info = source.json("repository", "info", *ORG, "--repository", f"{CUSTOM}/utils")
    assert info["upstream_url"] == "https://m.example/t/utils/" and info["effective_url"] == "file:///srv/utils/"

    rows = source.json("product", "set-url", *ORG, "--product", CUSTOM, "--url", "http://mirror.local/tools")
    by = {r["repository"]: r for r in rows}
    assert by["more"]["effective_url"] == "http://mirror.local/tools/more/"
    assert by["more"]["effective_from"] == "product override"
    assert by["utils"]["effective_url"] == "file:///srv/utils/"  # its own override wins

    r = source.json("organization", "set-cdn", *ORG, "--url", "file:///srv/exports/bundle-1")
    assert r["repositories"][0]["effective_url"] == f"file:///srv/exports/bundle-1/repos/{RH}/baseos/"
    assert urls(source, f"{CUSTOM}/more")["effective_from"] == "product override"  # the CDN is Red Hat only

    source.run("repository", "set-url", *ORG, "--repository", f"{CUSTOM}/utils", "--reset")
    assert urls(source, f"{CUSTOM}/utils")["effective_url"] == "http://mirror.local/tools/utils/"
    source.run("product", "set-url", *ORG, "--product", CUSTOM, "--reset")
    assert urls(source, f"{CUSTOM}/utils")["effective_url"] == "https://m.example/t/utils/"
    source.run("organization", "set-cdn", *ORG, "--reset")
    assert urls(source, f"{RH}/baseos")["effective_url"] == "https://cdn.rh/rhel9/baseos/"
    actions = [a for a, _, _ in audit_actions(source)]
    assert actions.count("repository.set_url") == 2 and actions.count("organization.set_cdn") == 2


def test_bad_urls_and_options_are_clear_and_change_nothing(source):
    source.run("repository", "create", *ORG, "--product", CUSTOM, "--name", "utils")
    for url, says in (("ftp://h/x/", "scheme must be one of"), ("http://h/a b/", "spaces"), ("https:///x", "no host")):
        fails(
            source, 2, "repository", "set-url", *ORG, "--repository", f"{CUSTOM}/utils", "--url", url, needles=(says,)
        )
        fails(source, 2, "product", "set-url", *ORG, "--product", CUSTOM, "--url", url, needles=(says,))
        fails(source, 2, "organization", "set-cdn", *ORG, "--url", url, needles=(says,))
        fails(
            source,
            2,
            "repository",
            "synchronize",
            *ORG,
            "--repository",
            f"{CUSTOM}/utils",
            "--url",
            url,
            needles=(says,),
        )
    fails(source, 2, "organization", "set-cdn", *ORG, needles=("either --url URL or --reset",))
    fails(source, 2, "organization", "set-cdn", *ORG, "--url", "file:///x", "--reset", needles=("not both",))
    fails(source, 2, "repository", "set-url", *ORG, "--repository", f"{CUSTOM}/nope", "--reset", needles=("nope",))


def test_the_cdn_points_at_an_export_and_one_shot_urls_are_audited(tmp_path, published_source, destination):
    """A destination that synchronizes its Red Hat repository from a source's export directory."""
    full = published_source.json("content-export", "complete", "version", *ORG, "--content-view", "base")
    destination.run("repository", "create", *ORG, "--product", RH, "--name", "baseos")
    fails(
        destination, 2, "repository", "synchronize", *ORG, "--repository", f"{RH}/baseos", needles=("no upstream URL",)
    )
    destination.run("organization", "set-cdn", *ORG, "--url", Path(full["path"]).as_uri())
    r = destination.json("repository", "synchronize", *ORG, "--repository", f"{RH}/baseos")
    assert r["url"] == Path(full["path"]).as_uri() + f"/repos/{RH}/baseos/" and r["changed"] is True
    assert destination.json("repository", "info", *ORG, "--repository", f"{RH}/baseos")["package_count"] == 8

    destination.run("product", "create", *ORG, "--name", "Tools", "--label", CUSTOM)
    destination.run("repository", "create", *ORG, "--product", CUSTOM, "--name", "utils")
    once = Path(full["path"]).as_uri() + f"/repos/{CUSTOM}/utils/"
    # everything under the CDN URL is Red Hat content for this organization, even a custom tree in it
    fails(
        destination,
        3,
        "repository",
        "synchronize",
        *ORG,
        "--repository",
        f"{CUSTOM}/utils",
        "--url",
        once,
        needles=("the organization's CDN URL",),
    )
    destination.run("organization", "set-cdn", *ORG, "--reset")
    r = destination.json("repository", "synchronize", *ORG, "--repository", f"{CUSTOM}/utils", "--url", once)
    assert r["url"] == once and r["changed"] is True
    assert urls(destination, f"{CUSTOM}/utils")["effective_url"] is None  # --url was for that sync only
    syncs = [d for a, _, d in audit_actions(destination) if a == "repository.synchronize"]
    assert [(d["url"], d["one_shot"]) for d in syncs][-1] == (once, True)
    assert syncs[0]["one_shot"] is False


# --- 7. products CSV -------------------------------------------------------------------------------


def catalog_of(server: Server, org: str) -> list[tuple]:
    products = server.json("product", "list", "--organization", org)
    repos = server.json("repository", "list", "--organization", org)
    return sorted(
        [(p["label"], p["name"], p["redhat"], p["content_id"]) for p in products]
        + [(r["product"], r["label"], r["name"], r["content_type"], r["url"] or "") for r in repos]
    )


def test_products_csv_round_trip_and_reimport_changes_nothing(tmp_path, source):
    source.run(
        "repository",
        "create",
        *ORG,
        "--product",
        RH,
        "--name",
        "BaseOS",
        "--label",
        "baseos",
        "--url",
        "https://cdn.rh/b/",
    )
    source.run("repository", "create", *ORG, "--product", CUSTOM, "--name", "Utils, more", "--label", "utils")
    source.run("product", "create", *ORG, "--name", "Empty", "--label", "empty")
    out = tmp_path / "products.csv"
    assert source.json("product", "export", *ORG, "--csv", str(out))["rows"] == 3
    rows = list(csv.DictReader(out.open()))
    assert rows[0].keys() >= {"Name", "Label", "Organization", "Repository", "Repository Url", "Content Set", "Red Hat"}
    assert {r["Red Hat"] for r in rows} == {"yes", "no"}

    source.run("organization", "create", "--name", "Copy", "--label", "COPY")
    fixed = tmp_path / "copy.csv"
    fixed.write_text(out.read_text().replace(",ACME,", ",COPY,"))
    r = source.json("product", "import", "--organization", "COPY", "--csv", str(fixed))
    assert sorted(r["created_products"]) == sorted(["empty", RH, CUSTOM])
    assert catalog_of(source, "COPY") == catalog_of(source, "ACME")

    before = source.state()
    again = source.json("product", "import", "--organization", "COPY", "--csv", str(fixed))
    assert not any(
        again[k] for k in ("created_products", "updated_products", "created_repositories", "updated_repositories")
    )
    assert source.state() == before


def test_products_csv_bad_row_is_named_and_nothing_is_written(tmp_path, source):
    path = tmp_path / "in.csv"
    header = "Name,Label,Organization,Red Hat,Content Set,Repository,Repository Label,Repository Url\n"
    path.write_text(
        header
        + "Good,good,ACME,no,,Repo,repo,https://m.example/good/\n"
        + "Bad,bad,ACME,no,,Repo,repo,ftp://m.example/bad/\n"
    )
    out = fails(
        source,
        2,
        "product",
        "import",
        *ORG,
        "--csv",
        str(path),
        needles=("row 3, column 'Repository Url'", "nothing was written"),
    )
    assert "row 2" not in out
    # a custom product row pointing at Red Hat content (another row's Red Hat repository) is refused too
    path.write_text(
        header
        + f"RHEL 9,{RH},ACME,yes,rh-479,BaseOS,baseos,https://cdn.rh/b/\n"
        + "Sneaky,sneaky,ACME,no,,Repo,repo,https://cdn.rh/b/Packages/\n"
    )
    fails(
        source,
        2,
        "product",
        "import",
        *ORG,
        "--csv",
        str(path),
        needles=("row 3, column 'Repository Url'", "Red Hat content"),
    )
    path.write_text(header + f"Tools,{CUSTOM},ACME,yes,rh-1,Repo,repo,\n")  # exists here as custom
    fails(
        source,
        2,
        "product",
        "import",
        *ORG,
        "--csv",
        str(path),
        needles=("row 2, column 'Red Hat'", "exists here as custom"),
    )
    fails(source, 2, "product", "import", *ORG, "--csv", str(tmp_path / "missing.csv"), needles=("does not exist",))
    path.write_text("Name,Label\nx,y\n")
    fails(source, 2, "product", "import", *ORG, "--csv", str(path), needles=("missing: Repository, Repository Url",))


def test_products_csv_url_rewrite(tmp_path, source):
    path = tmp_path / "in.csv"
    path.write_text(
        "Name,Label,Organization,Red Hat,Content Set,Repository,Repository Label,Repository Url\n"
        "Good,good,ACME,no,,Repo,repo,https://cdn.example.com/content/good/\n"
    )
    source.run(
        "product", "import", *ORG, "--csv", str(path), "--url-rewrite", "https://cdn.example.com=file:///srv/mirror"
    )
    assert urls(source, "good/repo")["upstream_url"] == "file:///srv/mirror/content/good/"
    fails(source, 2, "product", "import", *ORG, "--csv", str(path), "--url-rewrite", "nonsense", needles=("FROM=TO",))
