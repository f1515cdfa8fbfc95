"""The worker roles, in a module that imports nothing, so that `iss --help` can list them cheaply."""

ROLES = ("export", "import", "status")
