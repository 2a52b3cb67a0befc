#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs PostgreSQL 15 from Debian's packages when its
# server binaries are missing (the integration tests start their own primary and replicas), then
# installs etcd and Patroni the same way (for the Patroni test), then runs every test with every
# feature.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_bindir() {
  for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ] && { pg_config --bindir; return 0; }
  return 1
}

if ! pg_bindir >/dev/null; then
  echo "test.sh: PostgreSQL server binaries missing; installing from Debian's packages" >&2
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq postgresql pgbouncer >/dev/null
  # The tests run their own servers; the distribution's default cluster is not needed.
  $sudo_cmd pg_ctlcluster 15 main stop >/dev/null 2>&1 || true
fi
if ! command -v pgbouncer >/dev/null 2>&1; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq pgbouncer >/dev/null 2>&1 || \
    echo "test.sh: pgbouncer not installed; the PgBouncer test will say so" >&2
fi
# etcd and Patroni for tests/patroni.rs and tests/fleet.rs (Debian's packages; quiet and quick
# when present).
bash scripts/patroni-testbed.sh install
# promtool (Debian's prometheus package) checks the alerting rules in tests/dashboards.rs.
if ! command -v promtool >/dev/null 2>&1; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  echo "test.sh: installing prometheus (promtool)" >&2
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # The package's own server is not needed.
  $sudo_cmd pkill -x prometheus >/dev/null 2>&1 || true
fi
echo "test.sh: PostgreSQL binaries in $(pg_bindir)" >&2

cargo test --all-features "$@"
