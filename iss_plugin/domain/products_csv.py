"""The products CSV (parity with `hammer csv products`): one row per repository (a product without
repositories gets one row with the repository columns empty). Pure: rows in, values or problems out."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from .content_rules import check_sync_url, rewrite_url
from .errors import IssError, UsageError
from .labels import check_label, make_label

NAME, LABEL, ORGANIZATION, DESCRIPTION = "Name", "Label", "Organization", "Description"
REDHAT, CONTENT_SET = "Red Hat", "Content Set"
REPOSITORY, REPOSITORY_LABEL, REPOSITORY_TYPE, REPOSITORY_URL = (
    "Repository",
    "Repository Label",
    "Repository Type",
    "Repository Url",
)
COLUMNS = (
    NAME,
    LABEL,
    ORGANIZATION,
    DESCRIPTION,
    REDHAT,
    CONTENT_SET,
    REPOSITORY,
    REPOSITORY_LABEL,
    REPOSITORY_TYPE,
    REPOSITORY_URL,
)
_Bad = Callable[[str, str], None]  # records "row N, column C: why"
REQUIRED = (NAME, LABEL, REPOSITORY, REPOSITORY_URL)
_YES, _NO = ("yes", "true", "1", "y"), ("no", "false", "0", "n", "")


@dataclass(frozen=True)
class CsvProduct:
    label: str
    name: str
    description: str | None
    redhat: bool
    content_id: str | None
    row: int  # the first row naming it


@dataclass(frozen=True)
class CsvRepository:
    product: str
    label: str
    name: str
    content_type: str
    url: str | None
    row: int


@dataclass(frozen=True)
class ProductsFile:
    products: tuple[CsvProduct, ...]
    repositories: tuple[CsvRepository, ...]


def to_row(organization: str, product: CsvProduct, repository: CsvRepository | None) -> dict[str, str]:
    return {
        NAME: product.name,
        LABEL: product.label,
        ORGANIZATION: organization,
        DESCRIPTION: product.description or "",
        REDHAT: "yes" if product.redhat else "no",
        CONTENT_SET: product.content_id or "",
        REPOSITORY: repository.name if repository else "",
        REPOSITORY_LABEL: repository.label if repository else "",
        REPOSITORY_TYPE: repository.content_type if repository else "",
        REPOSITORY_URL: (repository.url or "") if repository else "",
    }


def check_header(header: Sequence[str] | None) -> None:
    missing = [c for c in REQUIRED if c not in (header or ())]
    if missing:
        raise UsageError(
            f"the CSV's first row must name the columns; missing: {', '.join(missing)} "
            f"(columns: {', '.join(COLUMNS)}; `iss product export --csv` writes them)"
        )


def parse_rows(
    rows: Iterable[Mapping[str, str | None]],
    organization: str,
    rewrites: Sequence[tuple[str, str]],
    content_types: Sequence[str],
) -> ProductsFile:
    """Every row checked; UsageError (exit 2) naming each bad row and column, or the file's values.
    Row numbers are the spreadsheet's: the header is row 1."""
    problems: list[str] = []
    products: dict[str, CsvProduct] = {}
    repositories: dict[tuple[str, str], CsvRepository] = {}
    for number, raw in enumerate(rows, start=2):
        row = {k: (v or "").strip() for k, v in raw.items() if isinstance(k, str)}
        if None in raw:
            problems.append(f"row {number}: more cells than columns")
            continue

        bad = _recorder(problems, number)
        product = _product(row, number, organization, bad)
        if product is None:
            continue
        known = products.setdefault(product.label, product)
        if _differs(known, product):
            bad(LABEL, f"product '{product.label}' differs from row {known.row}: {_differs(known, product)}")
            continue
        repository = _repository(row, number, product, rewrites, content_types, bad)
        if repository is None:
            continue
        key = (repository.product, repository.label)
        if key in repositories:
            bad(REPOSITORY_LABEL, f"repository '{key[0]}/{key[1]}' is already in row {repositories[key].row}")
            continue
        repositories[key] = repository
    if problems:
        raise UsageError(f"the CSV has {len(problems)} problems; nothing was written", problems)
    return ProductsFile(tuple(products.values()), tuple(repositories.values()))


def _differs(a: CsvProduct, b: CsvProduct) -> str:
    fields = [("name", a.name, b.name), ("Red Hat", a.redhat, b.redhat), ("content set", a.content_id, b.content_id)]
    fields.append(("description", a.description, b.description))
    return ", ".join(f"{what} {x!r} there, {y!r} here" for what, x, y in fields if x != y)


def _product(row: dict[str, str], number: int, organization: str, bad: _Bad) -> CsvProduct | None:
    ok = True
    name = row.get(NAME, "")
    if not name:
        bad(NAME, "empty (every row names its product)")
        ok = False
    label = row.get(LABEL, "")
    try:
        label = check_label(label, "product label") if label else make_label(name or "_")
    except IssError as e:
        bad(LABEL, e.message)
        ok = False
    org = row.get(ORGANIZATION, "")
    if org and org != organization:
        bad(
            ORGANIZATION,
            f"'{org}' is not the organization being imported into ('{organization}'): "
            "change the column or leave it empty",
        )
        ok = False
    flag = row.get(REDHAT, "").lower()
    if flag not in _YES + _NO:
        bad(REDHAT, f"'{row.get(REDHAT)}' is not yes or no")
        ok = False
    redhat = flag in _YES
    content_id = row.get(CONTENT_SET) or None
    if redhat and not content_id:
        bad(CONTENT_SET, "a Red Hat product needs its content id")
        ok = False
    if content_id and not redhat:
        bad(CONTENT_SET, f"'{content_id}' given for a custom product (Red Hat is '{row.get(REDHAT) or 'no'}')")
        ok = False
    if not ok:
        return None
    return CsvProduct(label, name, row.get(DESCRIPTION) or None, redhat, content_id, number)


def _repository(
    row: dict[str, str],
    number: int,
    product: CsvProduct,
    rewrites: Sequence[tuple[str, str]],
    content_types: Sequence[str],
    bad: _Bad,
) -> CsvRepository | None:
    name, label, url = row.get(REPOSITORY, ""), row.get(REPOSITORY_LABEL, ""), row.get(REPOSITORY_URL, "")
    content_type = row.get(REPOSITORY_TYPE, "") or "yum"
    if not (name or label or url):
        return None  # a product without repositories
    ok = True
    if not name:
        bad(REPOSITORY, "empty while other repository columns are set")
        ok = False
    try:
        label = check_label(label, "repository label") if label else make_label(name or "_")
    except IssError as e:
        bad(REPOSITORY_LABEL, e.message)
        ok = False
    if content_type not in content_types:
        bad(REPOSITORY_TYPE, f"'{content_type}' is not a content type here ({', '.join(content_types)})")
        ok = False
    if url:
        url = rewrite_url(url, rewrites)
        try:
            check_sync_url(url, "URL")
        except IssError as e:
            bad(REPOSITORY_URL, e.message)
            ok = False
    if not ok:
        return None
    return CsvRepository(product.label, label, name, content_type, url or None, number)


def _recorder(problems: list[str], number: int) -> _Bad:
    def bad(column: str, why: str) -> None:
        problems.append(f"row {number}, column '{column}': {why}")

    return bad
