# The in-cluster database executor's script (see job.rs). It runs in the
# PostgreSQL image (POSIX sh + psql >= 13) as the container command of a Job in
# the database server's namespace.
#
# Inputs (environment): OPERATION (ensure | drop), DB_NAME, DB_OWNER, DB_TEMP
# (the reserved temporary name), DB_COMMENT (the ownership marker), RESULT_PATH
# (the container's termination-message file), DB_ROLE (the per-PR login role,
# named like the database; empty: the database is owned by an existing role and
# no role is managed), DB_ROLE_CONNLIMIT and DB_ROLE_VERIFIER (its connection
# limit and SCRAM-SHA-256 verifier — never the password), and libpq's PGHOST,
# PGPORT, PGUSER, PGPASSWORD, PGDATABASE.
#
# Every check runs before the first write: a role or database of that name
# without this stack's marker stops the script before anything changes.
#
# Scripts of one database take turns: each first takes a session advisory lock
# on the database's name (released when psql disconnects). Two can run at once:
# a replaced Job's pod keeps running until its kubelet stops it (`sh` as PID 1
# ignores SIGTERM, so up to the grace period), and the server finishes a
# statement whose client is gone. Unserialised, one ensure's CREATE of the
# temporary name raced the other's RENAME, failed, and its retry found the
# database and left the temporary one; a drop could finish before an older
# ensure's RENAME. An ensure that finds the database also drops a leftover
# temporary database.
#
# Every value reaches SQL only through psql variables, quoted by psql
# (:'literal') or by format() (%I identifiers, %L literals): no SQL is built by
# the shell. Failures raise an exception naming the database, so psql exits 3
# and, with terminationMessagePolicy FallbackToLogsOnError, the error becomes
# the pod's termination message.
#
# On success the script writes one JSON line to RESULT_PATH: the database's
# owner and COMMENT (and its role's connection limit, verifier and COMMENT)
# after `ensure`, {"absent": true} after `drop` (both verified gone).
set -eu

DB_ROLE="${DB_ROLE:-}"
if [ -n "$DB_ROLE" ]; then has_role=true; else has_role=false; fi

run() {
  PGOPTIONS="-c client_min_messages=warning" \
  psql -X -q -t -A -v ON_ERROR_STOP=1 -v VERBOSITY=terse \
    -v db="$DB_NAME" -v owner="$DB_OWNER" -v tmp="$DB_TEMP" \
    -v comment="$DB_COMMENT" -v result="$RESULT_PATH" \
    -v has_role="$has_role" -v role="$DB_ROLE" \
    -v connlimit="${DB_ROLE_CONNLIMIT:-0}" -v verifier="${DB_ROLE_VERIFIER:-}"
}

case "$OPERATION" in
ensure)
  run <<'SQL'
SELECT pg_advisory_lock(hashtext('preview-envs/database/' || :'db')) \g /dev/null
\if :has_role
SELECT format('DO $fail$ BEGIN RAISE EXCEPTION %L; END $fail$',
              format('role %s exists and does not carry the marker %s; refusing to take it over',
                     :'role', :'comment'))
  FROM pg_catalog.pg_authid a
 WHERE a.rolname = :'role'
   AND COALESCE(pg_catalog.shobj_description(a.oid, 'pg_authid'), '') <> :'comment' \gexec
\else
SELECT format('DO $fail$ BEGIN RAISE EXCEPTION %L; END $fail$',
              format('role %s does not exist on the server', :'owner'))
 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = :'owner') \gexec
\endif
SELECT format('DO $fail$ BEGIN RAISE EXCEPTION %L; END $fail$',
              format('database %s exists and does not carry the marker %s; refusing to take it over',
                     :'db', :'comment'))
  FROM pg_catalog.pg_database d
 WHERE d.datname = :'db'
   AND COALESCE(pg_catalog.shobj_description(d.oid, 'pg_database'), '') <> :'comment' \gexec
-- Serialised between concurrent Jobs (sql.rs REVOKE_SYSTEM_DATABASES): a
-- REVOKE rewrites the catalog row, so two at once fail with "tuple
-- concurrently updated".
BEGIN;
SELECT pg_advisory_xact_lock(hashtext('preview-envs/system-databases')) \g /dev/null
REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;
REVOKE CONNECT ON DATABASE template1 FROM PUBLIC;
COMMIT;
\if :has_role
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = :'role') AS role_exists \gset
\if :role_exists
SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT %s PASSWORD %L',
              :'role', :'connlimit'::int, :'verifier') \gexec
\else
BEGIN;
SELECT format('CREATE ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT %s PASSWORD %L',
              :'role', :'connlimit'::int, :'verifier') \gexec
SELECT format('COMMENT ON ROLE %I IS %L', :'role', :'comment') \gexec
COMMIT;
\endif
\endif
SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = :'db') AS missing \gset
\if :missing
SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', :'tmp') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'tmp', :'owner') \gexec
SELECT format('COMMENT ON DATABASE %I IS %L', :'tmp', :'comment') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'tmp') \gexec
SELECT format('ALTER DATABASE %I RENAME TO %I', :'tmp', :'db') \gexec
\else
SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', :'tmp') \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'db', :'owner') \gexec
\endif
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db') \gexec
\o :result
SELECT json_build_object(
         'owner', pg_catalog.pg_get_userbyid(d.datdba),
         'comment', COALESCE(pg_catalog.shobj_description(d.oid, 'pg_database'), ''),
         'role', (SELECT json_build_object(
                           'connectionLimit', a.rolconnlimit,
                           'passwordVerifier', COALESCE(a.rolpassword, ''),
                           'comment', COALESCE(pg_catalog.shobj_description(a.oid, 'pg_authid'), ''))
                    FROM pg_catalog.pg_authid a
                   WHERE a.rolname = :'role'))
  FROM pg_catalog.pg_database d
 WHERE d.datname = :'db';
\o
SQL
  ;;
drop)
  run <<'SQL'
SELECT pg_advisory_lock(hashtext('preview-envs/database/' || :'db')) \g /dev/null
SELECT format('DO $fail$ BEGIN RAISE EXCEPTION %L; END $fail$',
              format('database %s does not carry the marker %s; refusing to drop it',
                     :'db', :'comment'))
  FROM pg_catalog.pg_database d
 WHERE d.datname = :'db'
   AND COALESCE(pg_catalog.shobj_description(d.oid, 'pg_database'), '') <> :'comment' \gexec
\if :has_role
SELECT format('DO $fail$ BEGIN RAISE EXCEPTION %L; END $fail$',
              format('role %s does not carry the marker %s; refusing to drop it (or its database)',
                     :'role', :'comment'))
  FROM pg_catalog.pg_authid a
 WHERE a.rolname = :'role'
   AND COALESCE(pg_catalog.shobj_description(a.oid, 'pg_authid'), '') <> :'comment' \gexec
\endif
SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', :'db') \gexec
SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', :'tmp') \gexec
SELECT format('DO $fail$ BEGIN RAISE EXCEPTION %L; END $fail$',
              format('database %s is still in pg_database after DROP DATABASE', :'db'))
 WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = :'db') \gexec
\if :has_role
SELECT format('DROP ROLE IF EXISTS %I', :'role') \gexec
SELECT format('DO $fail$ BEGIN RAISE EXCEPTION %L; END $fail$',
              format('role %s is still in pg_roles after DROP ROLE', :'role'))
 WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = :'role') \gexec
\endif
\o :result
SELECT json_build_object('absent', true);
\o
SQL
  ;;
*)
  echo "unknown OPERATION '$OPERATION' (expected ensure or drop)" >&2
  exit 2
  ;;
esac
