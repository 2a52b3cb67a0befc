#!/usr/bin/env bash
# Prints src/classify/pg_catalog.rs: the classifier's tables of PostgreSQL's callable built-in
# functions (with their volatility) and keywords, read from a real server's catalog by
# scripts/pg-builtins.sql.
#
#   bash scripts/gen-pg-builtins.sh > src/classify/pg_catalog.rs
#
# With a libpq connection string as the first argument it reads that server; without one it
# starts a throwaway server from the PostgreSQL binaries it finds (/usr/lib/postgresql/<v>/bin,
# highest version first, or PG_BINDIR), as the `postgres` user when run as root, and removes it
# afterwards. The committed file comes from PostgreSQL 15, the only version installed where it
# was generated; the classifier's rules (src/classify/names.rs) decide what is read-only.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
sql="$here/pg-builtins.sql"

if [ $# -ge 1 ]; then
  exec psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$1" -f "$sql"
fi

bindir="${PG_BINDIR:-}"
if [ -z "$bindir" ]; then
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { bindir="$d"; break; }
  done
fi
[ -n "$bindir" ] && [ -x "$bindir/initdb" ] || { echo "gen-pg-builtins: no PostgreSQL binaries (set PG_BINDIR)" >&2; exit 1; }

dir="$(mktemp -d /tmp/seawall-pgcat.XXXXXX)"
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres "$dir"
  as_pg=(runuser -u postgres --)
fi
cleanup() {
  (cd / && "${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1) || true
  rm -rf "$dir"
}
trap cleanup EXIT
cd /
"${as_pg[@]}" "$bindir/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
"${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
  -o "-c listen_addresses='' -k $dir -p 5432" start >/dev/null
"$bindir/psql" -X -A -t -q -v ON_ERROR_STOP=1 -h "$dir" -p 5432 -U postgres -d postgres -f "$sql"
