#!/usr/bin/env bash
# A throwaway HA cluster on 127.0.0.1: one etcd member + 3 Patroni members (n0..n2) of PostgreSQL 15.
#
#   scripts/patroni-testbed.sh install          apt-get what is missing (patroni, etcd-server, etcd-client, postgresql)
#   scripts/patroni-testbed.sh start            start etcd + n0..n2, wait for a leader and 2 streaming replicas
#   scripts/patroni-testbed.sh status           members, roles, lag (GET /cluster)
#   scripts/patroni-testbed.sh stop             kill everything it started (pid files), remove the folder
#   scripts/patroni-testbed.sh leader           print "NAME PGPORT" of the leader
#   scripts/patroni-testbed.sh wait-healthy [SECS]         wait for a leader + 2 streaming replicas
#   scripts/patroni-testbed.sh wait-leader [SECS] [NOT]    wait for a writable leader (other than NOT)
#   scripts/patroni-testbed.sh switchover [N]   POST /switchover to member N (default: the sync standby, else a replica)
#   scripts/patroni-testbed.sh kill-pg N        kill -9 member N's postmaster (N: 0..2, n0..n2 or "leader")
#   scripts/patroni-testbed.sh kill-node N      kill -9 member N's Patroni and postmaster
#   scripts/patroni-testbed.sh start-node N     start member N's Patroni again (after kill-node)
#   scripts/patroni-testbed.sh freeze-patroni N / thaw-patroni N    SIGSTOP / SIGCONT member N's Patroni only
#
# Everything lives in $SEAWALL_PATRONI_DIR (default /tmp/seawall-patroni-testbed); after a start,
# `source $SEAWALL_PATRONI_DIR/env` sets SEAWALL_PATRONI_APIS, SEAWALL_PATRONI_PG, SEAWALL_PATRONI_N<i>_*.
# Knobs: SEAWALL_PATRONI_SYNC=1 (synchronous_mode), SEAWALL_PATRONI_TTL / _LOOP_WAIT / _RETRY_TIMEOUT
# (5/1/2), SEAWALL_PATRONI_PRIMARY_START_TIMEOUT (0: a crashed primary fails over instead of being
# restarted in place), SEAWALL_PATRONI_TIMEOUT (start timeout, 90 s), SEAWALL_PATRONI_DCS (etcd3; `etcd`
# = v2 API, then etcd runs with --enable-v2). As root, etcd, Patroni and PostgreSQL run as `postgres`.
set -euo pipefail

DIR=$(realpath -m "${SEAWALL_PATRONI_DIR:-/tmp/seawall-patroni-testbed}")
BIN=/usr/lib/postgresql/15/bin
SCOPE=seawall-testbed

die() { echo "patroni-testbed: $*" >&2; exit 1; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$(now)"; }

install() {
  local need=()
  command -v patroni >/dev/null || need+=(patroni)
  command -v etcd >/dev/null || need+=(etcd-server)
  command -v etcdctl >/dev/null || need+=(etcd-client)
  [[ -x $BIN/initdb && -x $BIN/pg_basebackup ]] || need+=(postgresql)
  ((${#need[@]})) || return 0
  local sudo=(); [[ $(id -u) == 0 ]] || sudo=(sudo)
  local rc=/usr/sbin/policy-rc.d made=0
  if [[ ! -e $rc ]]; then # keep the packages from starting etcd / a postgres cluster on the default ports
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee $rc >/dev/null && "${sudo[@]}" chmod 755 $rc && made=1
  fi
  echo "patroni-testbed: installing ${need[*]}" >&2
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
    { ((made)) && "${sudo[@]}" rm -f $rc; die "apt-get install ${need[*]} failed"; }
  ((made)) && "${sudo[@]}" rm -f $rc
  # In case something was started anyway (a policy-rc.d that allows it, systemd as PID 1).
  [[ -d /run/systemd/system ]] && "${sudo[@]}" systemctl disable --now etcd patroni >/dev/null 2>&1 || true
  command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | while read -r ver name _ status _; do
    [[ $status == online* ]] && "${sudo[@]}" pg_ctlcluster "$ver" "$name" stop || true
  done
  return 0
}

check_bins() {
  if [[ ! -x $BIN/initdb ]] && command -v pg_config >/dev/null; then BIN=$(pg_config --bindir); fi
  [[ -x $BIN/initdb && -x $BIN/pg_basebackup ]] || die "PostgreSQL 15 binaries missing: run '$0 install'"
  command -v patroni >/dev/null && command -v etcd >/dev/null || die "patroni or etcd missing: run '$0 install'"
}

# Starts CMD in the background as postgres (when root), with a clean environment, from /; the process
# writes its own pid to PIDFILE. setpriv execs (runuser would stay as a parent that forks, and that
# stops itself when its child gets SIGSTOP, so a frozen-then-thawed Patroni would leave it behind).
launch() { # PIDFILE LOG CMD...
  local pidfile=$1 log=$2; shift 2
  local pre=(); [[ $(id -u) == 0 ]] && pre=(setpriv --reuid=postgres --regid=postgres --init-groups)
  (cd / && exec "${pre[@]}" env -i PATH=/usr/bin:/bin LC_ALL=C.UTF-8 HOME="$DIR/home" \
    sh -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" </dev/null >>"$log" 2>&1) & disown $!
  local t=0; until [[ -s $pidfile ]]; do ((++t > 250)) && die "$* did not start"; sleep 0.02; done
}

ours() { # PID: alive, and started with our folder on its command line
  [[ $1 =~ ^[0-9]+$ ]] && [[ -r /proc/$1/cmdline ]] && tr '\0' ' ' </proc/"$1"/cmdline 2>/dev/null | grep -qF "$DIR/"
}
pidof_file() { [[ -s $1 ]] && head -1 "$1" | tr -d ' ' || true; }
patroni_pid() { pidof_file "$DIR/n$1.pid"; }
postmaster_pid() { pidof_file "$DIR/n$1/data/postmaster.pid"; }
wait_gone() { # SECS PID...
  local t=0 lim=$(($1 * 50)) p alive; shift
  while :; do
    alive=0; for p in "$@"; do ours "$p" && alive=1; done
    ((alive && ++t < lim)) || return 0; sleep 0.02
  done
}

load_env() { # for every subcommand but install/start/stop
  [[ -f $DIR/env ]] || die "no test bed in $DIR (start it first)"
  # shellcheck disable=SC1091
  source "$DIR/env"
  if [[ ! -x $BIN/psql ]] && command -v pg_config >/dev/null; then BIN=$(pg_config --bindir); fi
}

# REST API helper (python3, no proxy). Commands: status, leader, healthy SECS, writable SECS NOT, switchover CAND.
rest() {
  APIS=$SEAWALL_PATRONI_APIS SYNC=${SEAWALL_PATRONI_SYNC:-0} PSQL=$BIN/psql python3 - "$@" <<'EOF'
import json, os, subprocess, sys, time, urllib.error, urllib.request
op = urllib.request.build_opener(urllib.request.ProxyHandler({}))
apis = os.environ["APIS"].split(",")
def req(url, body=None, timeout=1.0):
    data = None if body is None else json.dumps(body).encode()
    r = urllib.request.Request(url, data=data, method="GET" if data is None else "POST",
                               headers={"Content-Type": "application/json"})
    try:
        with op.open(r, timeout=timeout) as f: return f.status, f.read().decode()
    except urllib.error.HTTPError as e: return e.code, e.read().decode()
def cluster():
    for a in apis:
        try:
            code, body = req(a + "/cluster")
            if code == 200: return json.loads(body)
        except Exception: pass
    return None
def leader(c):
    return next((m for m in (c or {}).get("members", []) if m["role"] in ("leader", "master", "primary")), None)
def healthy():
    c = cluster()
    if c is None: return "no REST API answers /cluster"
    l, ms = leader(c), c.get("members", [])
    if l is None or l["state"] != "running": return "no running leader: %s" % [(m["name"], m["role"], m["state"]) for m in ms]
    reps = [m for m in ms if m is not l and m["role"] in ("replica", "sync_standby") and m["state"] in ("running", "streaming")]
    reps = [m for m in reps if m.get("timeline") == l.get("timeline")]
    if len(reps) < len(apis) - 1: return "leader %s, running on its timeline: %s" % (l["name"], [m["name"] for m in reps])
    if os.environ["SYNC"] == "1" and not any(m["role"] == "sync_standby" for m in reps): return "no sync_standby yet"
    try: st = json.loads(req(l["api_url"].rsplit("/", 1)[0] + "/patroni")[1])
    except Exception as e: return "leader %s REST: %s" % (l["name"], e)
    streaming = [r["application_name"] for r in st.get("replication", []) if r.get("state") == "streaming"]
    if len(streaming) < len(apis) - 1: return "leader %s, streaming: %s" % (l["name"], streaming)
    return None
def writable(l):
    q = ["-X", "-At", "-d", "host=%s port=%s user=postgres dbname=postgres connect_timeout=2" % (l["host"], l["port"]),
         "-c", "SELECT pg_is_in_recovery()"]
    try: return subprocess.run([os.environ["PSQL"]] + q, capture_output=True, text=True, timeout=3).stdout.strip() == "f"
    except Exception: return False
cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "status":
    c = cluster()
    if c is None: sys.exit("patroni-testbed: no REST API answers /cluster")
    print("%-4s %-13s %-9s %-16s %-3s %-8s %s" % ("name", "role", "state", "postgres", "tl", "lag", "api"))
    for m in c["members"]:
        print("%-4s %-13s %-9s %-16s %-3s %-8s %s" % (m["name"], m["role"], m["state"], "%s:%s" % (m["host"], m["port"]),
              m.get("timeline", "-"), m.get("lag", "-"), m["api_url"].rsplit("/", 1)[0]))
elif cmd == "leader":
    l = leader(cluster())
    if l is None: sys.exit("patroni-testbed: no leader")
    print(l["name"], l["port"])
elif cmd in ("healthy", "writable"):
    end, why = time.time() + float(args[0]), None
    while time.time() < end:
        if cmd == "healthy":
            why = healthy()
            if why is None: sys.exit(0)
        else:
            l = leader(cluster())
            why = "no leader" if l is None else "leader %s state %s" % (l["name"], l["state"])
            if l is not None and l["name"] != args[1] and l["state"] == "running" and writable(l):
                print(l["name"], l["port"]); sys.exit(0)
        time.sleep(0.05)
    sys.exit("patroni-testbed: timed out after %s s: %s" % (args[0], why))
elif cmd == "switchover":
    c = cluster(); l = leader(c)
    if l is None: sys.exit("patroni-testbed: no leader")
    # In synchronous mode Patroni only switches over to the sync standby (412 otherwise).
    ok = [m for m in c["members"] if m is not l and m["state"] in ("running", "streaming")]
    ok = [m for m in ok if m["role"] == "sync_standby"] or ok
    cand = args[0] if args and args[0] else (ok[0]["name"] if ok else "")
    code, body = req(l["api_url"].rsplit("/", 1)[0] + "/switchover", {"leader": l["name"], "candidate": cand}, timeout=60)
    print("%s -> %s: HTTP %s %s" % (l["name"], cand, code, body.strip()))
    sys.exit(0 if code == 200 else 1)
EOF
}

member() { # N | nN | leader -> index
  local m=${1:-}
  [[ $m == leader ]] && m=$(rest leader | cut -d' ' -f1)
  m=${m#n}
  [[ $m =~ ^[0-2]$ ]] || die "member must be 0..2, n0..n2 or leader, got '${1:-}'"
  echo "$m"
}

write_config() { # I
  local i=$1 sync=false
  [[ ${SEAWALL_PATRONI_SYNC:-0} == 1 ]] && sync=true
  cat >"$DIR/n$i.yml" <<EOF
scope: $SCOPE
namespace: /service/
name: n$i
restapi:
  listen: 127.0.0.1:${API[$i]}
  connect_address: 127.0.0.1:${API[$i]}
${DCS}:
  hosts: 127.0.0.1:$ETCD_PORT
bootstrap:
  dcs:
    ttl: ${SEAWALL_PATRONI_TTL:-5}
    loop_wait: ${SEAWALL_PATRONI_LOOP_WAIT:-1}
    retry_timeout: ${SEAWALL_PATRONI_RETRY_TIMEOUT:-2}
    primary_start_timeout: ${SEAWALL_PATRONI_PRIMARY_START_TIMEOUT:-0}
    maximum_lag_on_failover: 1048576
    synchronous_mode: $sync
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters: {max_connections: 200, max_wal_senders: 10, max_replication_slots: 10, wal_level: replica,
                   hot_standby: "on", wal_log_hints: "on", wal_keep_size: 512MB, fsync: "off",
                   wal_receiver_status_interval: 1s, wal_retrieve_retry_interval: 200ms}
  initdb: [{encoding: UTF8}, {locale: C}, no-sync]
  pg_hba: [local all all trust, local replication all trust, host all all 127.0.0.1/32 trust,
           host replication all 127.0.0.1/32 trust]
postgresql:
  listen: 127.0.0.1:${PGP[$i]}
  connect_address: 127.0.0.1:${PGP[$i]}
  data_dir: $DIR/n$i/data
  bin_dir: $BIN
  pgpass: $DIR/n$i/pgpass
  authentication:
    superuser: {username: postgres}
    replication: {username: replicator, password: replicator}
  parameters:
    unix_socket_directories: $DIR/n$i
    shared_buffers: 32MB
watchdog: {mode: "off", safety_margin: -1}  # -1: no "Watchdog not supported" warning every loop with ttl 5
EOF
}

failed() { # EXIT trap of start
  (($1)) || return 0
  local f; for f in "$DIR"/*.log; do [[ -f $f ]] && { echo "--- tail of $f" >&2; tail -n 15 "$f" >&2; }; done
  kill_all
  echo "patroni-testbed: start failed; processes stopped, logs kept in $DIR ('$0 stop' removes it)" >&2
}

start() {
  [[ -e $DIR ]] && die "$DIR exists: run '$0 stop' first (or set SEAWALL_PATRONI_DIR)"
  check_bins
  DCS=${SEAWALL_PATRONI_DCS:-etcd3}
  [[ $DCS == etcd3 || $DCS == etcd ]] || die "SEAWALL_PATRONI_DCS must be etcd3 or etcd"
  local t0; t0=$(now)
  mkdir -p "$DIR"
  # From here on, any failure (or ^C) prints the logs and kills what was started; the folder stays.
  trap 'failed $?' EXIT; trap 'exit 130' INT TERM
  mkdir -p "$DIR/home" "$DIR"/n{0,1,2} && chmod 700 "$DIR/home" "$DIR"/n{0,1,2}
  if [[ $(id -u) == 0 ]]; then
    chown -R postgres:postgres "$DIR"
    runuser -u postgres -- test -w "$DIR" || die "postgres cannot write to $DIR (a parent folder is closed?)"
  fi
  local ports; read -r -a ports < <(python3 -c 'import socket
ss = [socket.socket() for _ in range(8)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))')
  ETCD_PORT=${ports[0]}; local peer=${ports[1]}; API=("${ports[@]:2:3}"); PGP=("${ports[@]:5:3}")
  local i apis=() pgs=()
  for i in 0 1 2; do apis+=("http://127.0.0.1:${API[$i]}"); pgs+=("127.0.0.1:${PGP[$i]}"); done
  SEAWALL_PATRONI_APIS=$(IFS=,; echo "${apis[*]}")
  { # one `export NAME='VALUE'` a line (easy to parse without a shell)
    printf "export %s='%s'\n" SEAWALL_PATRONI_DIR "$DIR" SEAWALL_PATRONI_APIS "$SEAWALL_PATRONI_APIS" \
      SEAWALL_PATRONI_PG "$(IFS=,; echo "${pgs[*]}")" SEAWALL_PATRONI_ETCD "http://127.0.0.1:$ETCD_PORT" \
      SEAWALL_PATRONI_SCOPE "$SCOPE" SEAWALL_PATRONI_SYNC "${SEAWALL_PATRONI_SYNC:-0}"
    for i in 0 1 2; do
      printf "export SEAWALL_PATRONI_N${i}_%s='%s'\n" NAME "n$i" API "${apis[$i]}" PG "${pgs[$i]}" \
        URL "postgres://postgres@${pgs[$i]}/postgres"
    done
  } >"$DIR/env"

  local v2=(); [[ $DCS == etcd ]] && v2=(--enable-v2=true)
  launch "$DIR/etcd.pid" "$DIR/etcd.log" etcd --name e0 --data-dir "$DIR/etcd" "${v2[@]}" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "e0=http://127.0.0.1:$peer" --initial-cluster-state new --initial-cluster-token "$SCOPE-$$"
  local t=0 etcdctl; etcdctl=$(command -v etcdctl) || die "etcdctl missing: run '$0 install'"
  until env -i ETCDCTL_API=3 "$etcdctl" --endpoints="127.0.0.1:$ETCD_PORT" --dial-timeout=1s endpoint health >/dev/null 2>&1; do
    ((++t > 300)) && die "etcd not healthy after 15 s"
    ours "$(pidof_file "$DIR/etcd.pid")" || die "etcd exited"
    sleep 0.05
  done
  echo "etcd healthy after $(since "$t0") s (http://127.0.0.1:$ETCD_PORT, DCS $DCS)"

  for i in 0 1 2; do
    write_config "$i"
    [[ $(id -u) == 0 ]] && chown postgres:postgres "$DIR/n$i.yml"
    launch "$DIR/n$i.pid" "$DIR/n$i.log" patroni "$DIR/n$i.yml"
  done
  rest healthy "${SEAWALL_PATRONI_TIMEOUT:-90}" || die "no leader with 2 streaming replicas"
  trap - EXIT INT TERM
  rest status
  echo "started in $(since "$t0") s; source $DIR/env for SEAWALL_PATRONI_APIS / SEAWALL_PATRONI_PG; '$0 stop' to stop"
}

# Kills everything started from $DIR: Patroni (and whatever it is running: initdb, pg_basebackup...),
# then each postmaster (SIGQUIT = immediate shutdown, which also frees its SysV segment), then etcd.
kill_all() {
  local - i p kids key id pm=(); set +e
  for i in 0 1 2; do
    p=$(patroni_pid "$i"); ours "$p" || continue
    kids=$(ps -o pid= --ppid "$p" 2>/dev/null || true)
    kill -KILL "$p" 2>/dev/null
    for p in $kids; do ours "$p" && kill -KILL "$p" 2>/dev/null; done
  done
  for i in 0 1 2; do
    p=$(postmaster_pid "$i"); ours "$p" && kill -QUIT "$p" 2>/dev/null && pm+=("$p")
  done
  ((${#pm[@]})) && wait_gone 5 "${pm[@]}"
  for p in "${pm[@]}"; do ours "$p" && kill -KILL "$p" 2>/dev/null; done
  p=$(pidof_file "$DIR/etcd.pid")
  if ours "$p"; then kill -TERM "$p" 2>/dev/null; wait_gone 5 "$p"; ours "$p" && kill -KILL "$p" 2>/dev/null; fi
  # Last sweep: any server/tool process still running with our folder on its command line.
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [[ $(cat /proc/"$p"/comm 2>/dev/null) =~ ^(postgres|patroni|etcd|initdb|pg_.*)$ ]] && ours "$p" && kill -KILL "$p" 2>/dev/null
  done
  # SysV segments of postmasters that were killed -9 (kill-pg / kill-node) and never restarted.
  for i in 0 1 2; do
    [[ -f $DIR/n$i/data/postmaster.pid ]] || continue
    read -r key id < <(sed -n 7p "$DIR/n$i/data/postmaster.pid")
    [[ $key =~ ^[0-9]+$ && $id =~ ^[0-9]+$ ]] || continue
    ipcs -m | awk -v k="$(printf '0x%08x' "$key")" -v id="$id" '$1 == k && $2 == id && $6 == 0 {f=1} END {exit !f}' &&
      ipcrm -m "$id" 2>/dev/null
  done
  return 0
}

stop() {
  [[ -d $DIR ]] || { echo "patroni-testbed: nothing in $DIR"; return 0; }
  kill_all
  rm -rf "$DIR"
  echo "patroni-testbed: stopped; removed $DIR"
}

cmd=${1:-start}; shift || true
case $cmd in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) load_env; rest status ;;
  leader) load_env; rest leader ;;
  wait-healthy) load_env; t0=$(now); rest healthy "${1:-60}"; echo "healthy after $(since "$t0") s" ;;
  wait-leader) load_env; t0=$(now); rest writable "${1:-60}" "${2:-}"; echo "writable leader after $(since "$t0") s" ;;
  switchover)
    load_env; old=$(rest leader | cut -d' ' -f1); t0=$(now)
    rest switchover "${1:+n$(member "$1")}"; echo "POST returned after $(since "$t0") s"
    rest writable 60 "$old"; echo "writable leader after $(since "$t0") s" ;;
  kill-pg | kill-node | start-node | freeze-patroni | thaw-patroni)
    load_env; i=$(member "${1:-}"); pat_pid=$(patroni_pid "$i"); pg_pid=$(postmaster_pid "$i")
    case $cmd in
      kill-pg) ours "$pg_pid" || die "n$i: no postmaster running"; kill -KILL "$pg_pid"; echo "n$i: killed postmaster $pg_pid" ;;
      kill-node)
        ours "$pat_pid" || die "n$i: patroni not running"; kill -KILL "$pat_pid"
        { ours "$pg_pid" && kill -KILL "$pg_pid"; } || pg_pid=none; echo "n$i: killed patroni $pat_pid and postmaster $pg_pid" ;;
      start-node)
        ours "$pat_pid" && die "n$i: patroni $pat_pid is still running"
        rm -f "$DIR/n$i.pid"; launch "$DIR/n$i.pid" "$DIR/n$i.log" patroni "$DIR/n$i.yml"
        echo "n$i: patroni started, pid $(patroni_pid "$i")" ;;
      freeze-patroni) ours "$pat_pid" || die "n$i: patroni not running"; kill -STOP "$pat_pid"; echo "n$i: patroni $pat_pid frozen" ;;
      thaw-patroni) ours "$pat_pid" || die "n$i: patroni not running"; kill -CONT "$pat_pid"; echo "n$i: patroni $pat_pid thawed" ;;
    esac ;;
  *) die "usage: $0 install|start|status|stop|leader|wait-healthy [S]|wait-leader [S] [NOT]|switchover [N]|kill-pg N|kill-node N|start-node N|freeze-patroni N|thaw-patroni N" ;;
esac
