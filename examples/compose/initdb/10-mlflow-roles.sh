#!/usr/bin/env bash
# Runs once, as the postgres superuser, when the postgres service's data folder is new
# (docker-entrypoint-initdb.d). Sets the database up as a careful team would: MLflow
# connects as an unprivileged role that owns its database (and so the tables its
# migrations make); the audit connects as a read-only role with pg_monitor; passwords are
# SCRAM and come from the environment, never from this file.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
     -v mlflow_password="${MLFLOW_DB_PASSWORD:?}" \
     -v auditor_password="${MLFLOW_AUDITOR_PASSWORD:?}" <<'SQL'
SET password_encryption = 'scram-sha-256';
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
-- README's platform guide: a client that dies inside a transaction does not hold back
-- vacuum for long (settings.timeouts)
ALTER ROLE mlflow SET idle_in_transaction_session_timeout = '5min';
CREATE DATABASE mlflow OWNER mlflow;
-- read-only by construction: monitoring views, and SELECT on every table and sequence
CREATE ROLE mlflow_auditor LOGIN PASSWORD :'auditor_password' IN ROLE pg_monitor, pg_read_all_data;
\connect mlflow
-- PostgreSQL 14 lets everyone create in schema public; 15 and later do not
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO mlflow;
SQL
