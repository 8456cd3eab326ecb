#!/usr/bin/env bash
# A PostgreSQL server on loopback for the tests of shared studies (storage=postgres).
#
#   scripts/postgres.sh start    install (Debian's postgresql, first time), initialise, start; idempotent
#   scripts/postgres.sh stop     stop the server (the data stays for the next start)
#   scripts/postgres.sh status   exit 0 when the server answers
#   scripts/postgres.sh url      print the storage URL (with its password: for tests, never logged)
#
# The cluster is our own (own data folder and port), never the system's default one, so it cannot
# clash with another PostgreSQL on the machine. Root only (it runs the server as user postgres).
set -euo pipefail

STATE=${ADAPTNAS_SERVICES_DIR:-/var/tmp/adaptnas-services}
PORT=${ADAPTNAS_PG_PORT:-55432}
DATA=$STATE/pg/data
SOCK=$STATE/pg/sock
LOG=$STATE/pg/server.log
PASSFILE=$STATE/pg/password
ROLE=adaptnas
DB=adaptnas

say() { echo "postgres: $*" >&2; }

pg_bin() {
  local ver
  ver=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -1 || true)
  [[ -n $ver && -x /usr/lib/postgresql/$ver/bin/initdb ]] && echo "/usr/lib/postgresql/$ver/bin"
}

as_postgres() { runuser -u postgres -- "$@"; }

install() {
  if [[ -n $(pg_bin) ]] && id postgres >/dev/null 2>&1; then return 0; fi
  say "installing Debian's postgresql (first time)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends postgresql >/dev/null; }
  [[ -n $(pg_bin) ]] || { say "install failed: no initdb"; return 1; }
}

running() {
  local bin
  bin=$(pg_bin) || return 1
  [[ -f $DATA/postmaster.pid ]] && "$bin/pg_isready" -q -h "$SOCK" -p "$PORT" 2>/dev/null
}

init() {
  local bin=$1
  [[ -f $DATA/PG_VERSION ]] && return 0
  say "initialising $DATA"
  mkdir -p "$STATE/pg" "$SOCK"
  chown postgres:postgres "$STATE/pg" "$SOCK"
  chmod 755 "$STATE/pg"
  # Local socket: trust (only root and postgres reach it); TCP on loopback: password.
  as_postgres "$bin/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    -E UTF8 >/dev/null
  cat >>"$DATA/postgresql.conf" <<EOF
# adaptnas test server: loopback only, own port and socket, speed over durability
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCK'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
}

ensure_role() {
  local bin=$1 pass
  if [[ ! -s $PASSFILE ]]; then
    (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$PASSFILE")
  fi
  pass=$(cat "$PASSFILE")
  local psql=("$bin/psql" -h "$SOCK" -p "$PORT" -U postgres -d postgres -qtA -v ON_ERROR_STOP=1)
  if [[ -z $(as_postgres "${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname='$ROLE'") ]]; then
    as_postgres "${psql[@]}" -c "CREATE ROLE $ROLE LOGIN PASSWORD '$pass'" >/dev/null
  else
    as_postgres "${psql[@]}" -c "ALTER ROLE $ROLE PASSWORD '$pass'" >/dev/null
  fi
  if [[ -z $(as_postgres "${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname='$DB'") ]]; then
    as_postgres "${psql[@]}" -c "CREATE DATABASE $DB OWNER $ROLE" >/dev/null
  fi
}

start() {
  [[ $(id -u) == 0 ]] || { say "needs root (it runs the server as user postgres)"; return 1; }
  install
  local bin
  bin=$(pg_bin)
  init "$bin"
  if ! running; then
    mkdir -p "$SOCK" && chown postgres:postgres "$SOCK"
    # A server killed a moment ago may still hold its lock file: one retry after a pause.
    as_postgres "$bin/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start >/dev/null 2>&1 \
      || { sleep 3; as_postgres "$bin/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start >/dev/null; } \
      || { say "failed to start; last lines of $LOG:"; tail -5 "$LOG" >&2; return 1; }
    say "started on 127.0.0.1:$PORT"
  fi
  ensure_role "$bin"
}

stop() {
  local bin
  bin=$(pg_bin) || return 0
  if [[ -f $DATA/postmaster.pid ]]; then
    as_postgres "$bin/pg_ctl" -D "$DATA" -w -t 60 -m fast stop >/dev/null && say "stopped"
  fi
}

url() {
  [[ -s $PASSFILE ]] || { say "not initialised: run scripts/postgres.sh start"; return 1; }
  echo "postgresql+psycopg2://$ROLE:$(cat "$PASSFILE")@127.0.0.1:$PORT/$DB"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) running ;;
  url) url ;;
  *) echo "usage: $0 start|stop|status|url" >&2; exit 2 ;;
esac
