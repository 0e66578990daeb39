#!/usr/bin/env bash
# Runs once, when the postgres service initialises an empty data volume (the official postgres
# image executes /docker-entrypoint-initdb.d/*.sh as the superuser). POSTGRES_DB (the Airflow
# metadata database) already exists; this adds the warehouse:
#   * role WAREHOUSE_DB_USER (login, no superuser) owning database WAREHOUSE_DB_NAME: the
#     receiver, the tasks and the init service's migrations all use it;
#   * roles analyst (no login; reads the pseudonymised views, statement timeout) and pii_reader
#     (no login; reads raw numbers), granted by migrations V0400/V0700 (docs/privacy.md); created
#     here because the warehouse owner has no CREATEROLE.
# Values reach SQL as psql variables (:'name' quotes a literal, :"name" an identifier), never
# by string pasting.
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v wh_user="$WAREHOUSE_DB_USER" -v wh_password="$WAREHOUSE_DB_PASSWORD" -v wh_db="$WAREHOUSE_DB_NAME" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'wh_user', :'wh_password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'wh_user') \gexec
SELECT 'CREATE ROLE analyst NOLOGIN'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'analyst') \gexec
SELECT 'CREATE ROLE pii_reader NOLOGIN'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pii_reader') \gexec
-- the warehouse owner may not comment on roles (no CREATEROLE): the superuser does it here
COMMENT ON ROLE analyst IS 'Analysts: SELECT on the pseudonymised views of schema analyst only; statement timeout; no temporary objects.';
COMMENT ON ROLE pii_reader IS 'Reads every warehouse schema, raw numbers included (not the pseudonym key). Grant it to the few people who must.';
ALTER ROLE analyst SET statement_timeout = '2min';
ALTER ROLE analyst SET idle_in_transaction_session_timeout = '10min';
SELECT format('CREATE DATABASE %I OWNER %I', :'wh_db', :'wh_user')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'wh_db') \gexec
SQL
