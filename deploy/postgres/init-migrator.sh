#!/bin/sh
# docker compose: run by the postgres image on the first start of an empty data volume, as the
# superuser. Creates the role that owns the `auction` database and runs the migrations; it may
# create roles (the migrate step makes one per service and grants each only its tables) but is no
# superuser. Nothing in the stack logs in as the superuser afterwards.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
     -v password="$MIGRATE_DATABASE_PASSWORD" <<'SQL'
CREATE ROLE auction_migrate LOGIN CREATEROLE PASSWORD :'password';
CREATE DATABASE auction OWNER auction_migrate;
SQL
