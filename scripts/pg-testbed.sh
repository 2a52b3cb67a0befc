#!/usr/bin/env bash
# A PostgreSQL 15 primary with streaming replicas on 127.0.0.1, for trying seawall by hand.
# The same set-up as `seawall::testbed::PgCluster` (which the tests use).
#
#   scripts/pg-testbed.sh [start] [REPLICAS]   start a primary + REPLICAS replicas (default 2)
#   scripts/pg-testbed.sh status               show the nodes, their roles and URLs
#   scripts/pg-testbed.sh stop                 stop every node and remove the folder
#
# Data, logs and sockets live in $SEAWALL_PG_DIR (default /tmp/seawall-pg-testbed). After a
# start, `source $SEAWALL_PG_DIR/env` sets SEAWALL_PG_PRIMARY and SEAWALL_PG_REPLICAS.
# As root, the servers run as the `postgres` OS user (PostgreSQL refuses to run as root).
set -euo pipefail

DIR=${SEAWALL_PG_DIR:-/tmp/seawall-pg-testbed}
BIN=/usr/lib/postgresql/15/bin

die() { echo "pg-testbed: $*" >&2; exit 1; }

find_bin() {
  if [[ ! -x $BIN/initdb ]] && command -v pg_config >/dev/null; then
    BIN=$(pg_config --bindir)
  fi
  [[ -x $BIN/initdb && -x $BIN/pg_basebackup ]] ||
    die "PostgreSQL 15 binaries not found in /usr/lib/postgresql/15/bin; install them with: apt-get update && apt-get install -y postgresql"
}

# Runs a server binary, as postgres when we are root, from / (a folder postgres can read).
pg() {
  local prog=$1; shift
  if [[ $(id -u) == 0 ]]; then
    (cd / && runuser -u postgres -- "$BIN/$prog" "$@")
  else
    (cd / && "$BIN/$prog" "$@")
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

psql_at() { # PORT SQL
  "$BIN/psql" -X -At -d "host=127.0.0.1 port=$1 user=postgres dbname=postgres connect_timeout=5" -c "$2"
}

start() {
  local replicas=${1:-2}
  [[ $replicas =~ ^[0-9]+$ ]] || die "REPLICAS must be a number, got '$replicas'"
  [[ -e $DIR ]] && die "$DIR exists: run '$0 stop' first (or set SEAWALL_PG_DIR)"
  find_bin
  mkdir -m 700 -p "$DIR/sock"
  [[ $(id -u) == 0 ]] && chown -R postgres:postgres "$DIR"

  local port; port=$(free_port)
  pg initdb -D "$DIR/n0" -U postgres -A trust -E UTF8 --locale=C --no-sync --no-instructions >"$DIR/initdb.log"
  cat >>"$DIR/n0/postgresql.conf" <<EOF

# seawall test bed
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR/sock'
wal_level = replica
hot_standby = on
max_wal_senders = $((replicas + 4))
wal_keep_size = '512MB'
wal_log_hints = on
fsync = off
shared_buffers = '32MB'
max_connections = 200
wal_retrieve_retry_interval = '200ms'
wal_receiver_status_interval = '1s'
port = $port
cluster_name = 'n0'
EOF
  printf '%s\n' "local all all trust" "local replication all trust" \
    "host all all 127.0.0.1/32 trust" "host replication all 127.0.0.1/32 trust" >"$DIR/n0/pg_hba.conf"
  pg pg_ctl start -D "$DIR/n0" -l "$DIR/n0.log" -w -t 30 >/dev/null || { tail -20 "$DIR/n0.log"; die "primary did not start"; }
  echo "$port" >"$DIR/n0.port"

  local i rport
  for ((i = 1; i <= replicas; i++)); do
    pg pg_basebackup -h 127.0.0.1 -p "$port" -U postgres -D "$DIR/n$i" -R -X stream -c fast --no-sync
    rport=$(free_port)
    printf "port = %s\ncluster_name = 'n%s'\n" "$rport" "$i" >>"$DIR/n$i/postgresql.conf"
    pg pg_ctl start -D "$DIR/n$i" -l "$DIR/n$i.log" -w -t 30 >/dev/null || { tail -20 "$DIR/n$i.log"; die "replica $i did not start"; }
    echo "$rport" >"$DIR/n$i.port"
  done

  local streaming=0 tries=0
  until [[ $streaming -ge $replicas ]]; do
    streaming=$(psql_at "$port" "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
    ((++tries > 1500)) && die "replicas not streaming after 30 s (logs in $DIR)"
    sleep 0.02
  done

  local urls=()
  for ((i = 1; i <= replicas; i++)); do urls+=("postgres://postgres@127.0.0.1:$(cat "$DIR/n$i.port")/postgres"); done
  {
    echo "export SEAWALL_PG_PRIMARY=postgres://postgres@127.0.0.1:$port/postgres"
    echo "export SEAWALL_PG_REPLICAS='${urls[*]}'"
  } >"$DIR/env"
  echo "primary:  postgres://postgres@127.0.0.1:$port/postgres"
  for u in "${urls[@]}"; do echo "replica:  $u"; done
  echo "(source $DIR/env for SEAWALL_PG_PRIMARY / SEAWALL_PG_REPLICAS; '$0 stop' to stop)"
}

status() {
  [[ -d $DIR ]] || die "no test bed in $DIR"
  find_bin
  local f n port role
  for f in "$DIR"/n*.port; do
    n=$(basename "$f" .port); port=$(cat "$f")
    if role=$(psql_at "$port" "SELECT CASE WHEN pg_is_in_recovery() THEN 'replica' ELSE 'primary' END" 2>/dev/null); then
      echo "$n  $role  postgres://postgres@127.0.0.1:$port/postgres"
    else
      echo "$n  down     postgres://postgres@127.0.0.1:$port/postgres"
    fi
  done
}

stop() {
  [[ -d $DIR ]] || { echo "pg-testbed: nothing in $DIR"; return 0; }
  find_bin
  local d
  for d in "$DIR"/n*/; do
    [[ -f $d/postmaster.pid ]] || continue
    pg pg_ctl stop -D "$d" -m fast -w -t 10 >/dev/null 2>&1 ||
      pg pg_ctl stop -D "$d" -m immediate -w -t 10 >/dev/null 2>&1 || true
  done
  rm -rf "$DIR"
  echo "pg-testbed: stopped; removed $DIR"
}

case ${1:-start} in
  start) shift || true; start "${1:-2}" ;;
  status) status ;;
  stop) stop ;;
  [0-9]*) start "$1" ;;
  *) die "usage: $0 [start [REPLICAS] | status | stop]" ;;
esac
