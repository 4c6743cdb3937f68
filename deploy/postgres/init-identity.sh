#!/bin/sh
# Runs once, when PostgreSQL initialises an empty data volume (docker-entrypoint-initdb.d):
# creates the identity broker's own role and database, so the broker can never touch the audit
# log. The role's password is the one inside the broker's URL secret,
#   postgres://identity:<password>@postgres:5432/identity
# (use a password without URL-special characters, e.g. `openssl rand -hex 24`).
# The password never appears in a command line, a variable or a log line: psql reads it itself.
set -e
url_file="${IDENTITY_POSTGRES_URL_FILE:-/run/secrets/identity-postgres-url}"
pattern='^postgres\(ql\)\{0,1\}://identity:\([0-9A-Za-z._~-]\{16,\}\)@[^/]*/identity$'
if ! grep -q "$pattern" "$url_file"; then
  echo "init-identity: $url_file must hold postgres://identity:<password>@<host>:5432/identity" \
    "(password: 16 or more of A-Z a-z 0-9 . _ ~ -)" >&2
  exit 1
fi
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" \
  --dbname "${POSTGRES_DB:-postgres}" <<SQL
\\set password \`sed -n 's#$pattern#\\2#p' "$url_file"\`
CREATE ROLE identity LOGIN PASSWORD :'password';
CREATE DATABASE identity OWNER identity;
REVOKE ALL ON DATABASE identity FROM PUBLIC;
SQL
