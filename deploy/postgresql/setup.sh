#!/bin/sh
# PostgreSQL for one iss server: a login role, a database it owns, the schema (`iss db upgrade`).
# Run as a user that may create roles (e.g. `sudo -u postgres`), then as the iss user for the upgrade.
#   ISS_DB_NAME=iss ISS_DB_USER=iss ISS_DB_PASSWORD_FILE=/etc/iss/db-password ./setup.sh
# Idempotent: an existing role or database is kept. Every role of the server (relay, workers, serve)
# uses this one database; workers scale out on it (row and advisory locks, docs/architecture.md).
set -eu
DB=${ISS_DB_NAME:-iss}
USER_NAME=${ISS_DB_USER:-iss}
PSQL=${PSQL:-psql}
case "$DB$USER_NAME" in *[!A-Za-z0-9_]*) echo "setup.sh: use letters, digits and _ in names" >&2; exit 2;; esac

if ! $PSQL -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$USER_NAME'" | grep -q 1; then
    if [ -n "${ISS_DB_PASSWORD_FILE:-}" ]; then
        PW=$(cat "$ISS_DB_PASSWORD_FILE")
        $PSQL -v ON_ERROR_STOP=1 -v pw="$PW" -c "CREATE ROLE \"$USER_NAME\" LOGIN PASSWORD :'pw'"
    else
        $PSQL -v ON_ERROR_STOP=1 -c "CREATE ROLE \"$USER_NAME\" LOGIN"   # peer/cert authentication
    fi
fi
if ! $PSQL -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
    $PSQL -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$DB\" OWNER \"$USER_NAME\" ENCODING 'UTF8' TEMPLATE template0"
fi
$PSQL -v ON_ERROR_STOP=1 -d "$DB" -c "REVOKE ALL ON SCHEMA public FROM PUBLIC" \
    -c "GRANT ALL ON SCHEMA public TO \"$USER_NAME\""

# the schema: as the iss user, with the server's settings (safe to run again; see deploy/README.md
# for upgrades while workers run)
if [ "${ISS_SKIP_UPGRADE:-}" != "1" ]; then
    ISS=${ISS:-iss}
    $ISS --config "${ISS_CONFIG:-/etc/iss/export.toml}" db upgrade
fi
