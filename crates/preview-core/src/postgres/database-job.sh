# The in-cluster database executor's script (see job.rs). It runs in the
# PostgreSQL image (POSIX sh + psql >= 13) as the container command of a Job in
# the database server's namespace.
#
# Inputs (environment): OPERATION (ensure | drop), DB_NAME, DB_OWNER, DB_TEMP
# (the reserved temporary name), DB_COMMENT (the ownership marker), RESULT_PATH
# (the container's termination-message file) and libpq's PGHOST, PGPORT, PGUSER,
# PGPASSWORD, PGDATABASE.
#
# Every value reaches SQL only through psql variables, quoted by psql
# (:'literal') or by format() (%I identifiers, %L literals): no SQL is built by
# the shell. Failures raise an exception naming the database, so psql exits 3
# and, with terminationMessagePolicy FallbackToLogsOnError, the error becomes
# the pod's termination message.
#
# On success the script writes one JSON line to RESULT_PATH: the database's
# owner and COMMENT after `ensure`, {"absent": true} after `drop`.
set -eu

run() {
  PGOPTIONS="-c client_min_messages=warning" \
  psql -X -q -t -A -v ON_ERROR_STOP=1 -v VERBOSITY=terse \
    -v db="$DB_NAME" -v owner="$DB_OWNER" -v tmp="$DB_TEMP" \
    -v comment="$DB_COMMENT" -v result="$RESULT_PATH"
}

case "$OPERATION" in
ensure)
  run <<'SQL'
SELECT format('DO $fail$ BEGIN RAISE EXCEPTION %L; END $fail$',
              format('role %s does not exist on the server', :'owner'))
 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = :'owner') \gexec
SELECT format('DO $fail$ BEGIN RAISE EXCEPTION %L; END $fail$',
              format('database %s exists and does not carry the marker %s; refusing to take it over',
                     :'db', :'comment'))
  FROM pg_catalog.pg_database d
 WHERE d.datname = :'db'
   AND COALESCE(pg_catalog.shobj_description(d.oid, 'pg_database'), '') <> :'comment' \gexec
SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = :'db') AS missing \gset
\if :missing
SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', :'tmp') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'tmp', :'owner') \gexec
SELECT format('COMMENT ON DATABASE %I IS %L', :'tmp', :'comment') \gexec
SELECT format('ALTER DATABASE %I RENAME TO %I', :'tmp', :'db') \gexec
\else
SELECT format('ALTER DATABASE %I OWNER TO %I', :'db', :'owner') \gexec
\endif
\o :result
SELECT json_build_object(
         'owner', pg_catalog.pg_get_userbyid(d.datdba),
         'comment', COALESCE(pg_catalog.shobj_description(d.oid, 'pg_database'), ''))
  FROM pg_catalog.pg_database d
 WHERE d.datname = :'db';
\o
SQL
  ;;
drop)
  run <<'SQL'
SELECT format('DO $fail$ BEGIN RAISE EXCEPTION %L; END $fail$',
              format('database %s does not carry the marker %s; refusing to drop it',
                     :'db', :'comment'))
  FROM pg_catalog.pg_database d
 WHERE d.datname = :'db'
   AND COALESCE(pg_catalog.shobj_description(d.oid, 'pg_database'), '') <> :'comment' \gexec
SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', :'db') \gexec
SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', :'tmp') \gexec
SELECT format('DO $fail$ BEGIN RAISE EXCEPTION %L; END $fail$',
              format('database %s is still in pg_database after DROP DATABASE', :'db'))
 WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = :'db') \gexec
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
