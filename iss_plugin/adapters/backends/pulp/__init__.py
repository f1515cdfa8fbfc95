"""The Pulp content backend (docs/architecture.md §7, "pulp"): Pulp 3 + pulp_rpm through pulp-glue.

- A repository key "org/product/repo" is the Pulp rpm repository named `<prefix><key>` (the key as
  it is: labels cannot hold "/", so the name maps back to the key). Its remote and its
  distribution carry the same name. Pulp's version numbers are the backend's version numbers.
- Writes converge: read the current state, then create or update only what differs.

`PulpBackend` (backend.py) is composed of one part per reason to change, each a module:

- client.py: the session over pulp-glue (login, error translation, task waits)
- entities.py: Pulp's answers read as iss values
- repositories.py: naming, finding and creating repositories, version hrefs
- catalog.py: the catalog of versions (package sets, version info and changes, packages)
- placement.py: publications and distributions
- sync.py: remotes, syncs, staged local trees, the `<name>#incoming` repository
- export.py: the filesystem exporter, prepare_export
- content.py: uploads, bulk upload by sync, the modify task (add/remove packages)
- units.py: metadata units (advisories, comps, modulemds): read from the published repodata,
  added by a sync, counted in the version digest
- imports.py: importing a tree (checks, modify or mirror sync, the result's digest)
- housekeeping.py: orphan cleanup, deleting a repository
- watch.py: what the repository watcher reads
- tree.py: local files and yum trees handed to Pulp
"""

from iss_plugin.adapters.backends.pulp.backend import (
    BULK_UPLOAD,
    MODIFY_IMPORT_LIMIT,
    UPLOAD_THREADS,
    PulpBackend,
    session_for,
)
from iss_plugin.adapters.backends.pulp.catalog import _FILENAMES, _SETS
from iss_plugin.adapters.backends.pulp.imports import PACKAGE_METADATA
from iss_plugin.adapters.backends.pulp.sync import INCOMING
from iss_plugin.adapters.backends.pulp.tree import file_sha256
from iss_plugin.adapters.backends.pulp.watch import RepositoryChange

__all__ = [
    "BULK_UPLOAD",
    "INCOMING",
    "MODIFY_IMPORT_LIMIT",
    "PACKAGE_METADATA",
    "UPLOAD_THREADS",
    "_FILENAMES",
    "_SETS",
    "PulpBackend",
    "RepositoryChange",
    "file_sha256",
    "session_for",
]
