#!/usr/bin/env bash
# A PostgreSQL server on loopback for the tests of shared studies (storage=postgres).
#
#   scripts/postgres.sh start    install (Debian's postgresql, first time), initialise, start; idempotent
#   scripts/postgres.sh stop     stop the server (the data stays for the next start)
#   scripts/postgres.sh status   exit 0 when the server answers
#   scripts/postgres.sh url      print the storage URL (with its password: for tests, never logged)
#
# Who gets in: the OS user postgres through the socket (peer authentication; the socket folder
# is postgres's own, mode 0700, and the socket itself 0700), and whoever knows the role's password
# over TCP on 127.0.0.1 (scram-sha-256). No `trust` line anywhere. The password lives in a file
# only root can read ($STATE/secret, a root-owned 0700 folder) and reaches psql on its standard
# input, never in a command line that `ps` shows.
#
# The cluster is our own (own data folder and port), never Debian's default one: the install
# turns off the creation of a default cluster and starts nothing, so nothing else listens on
# 5432 because of us. The server runs with the binaries of the version that created its data
# ($DATA/PG_VERSION), not merely the newest installed. Root only (it runs the server as user
# postgres).
#
# Root runs nothing and touches nothing that the postgres user decides: the binaries' folder
# comes from the installed packages (PG_VERSION, which postgres can write, only picks one of
# them), postgres's own files are read and appended to as postgres, and folders are changed
# through a descriptor that follows no link (lib.sh's own_dir).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

STATE=$STATE_ROOT/pg
PORT=${ADAPTNAS_PG_PORT:-55432}
DATA=$STATE/data
SOCK=$STATE/sock
LOG=$STATE/server.log
SECRET=$STATE_ROOT/secret
PASSFILE=$SECRET/pg-password
ROLE=adaptnas
DB=adaptnas
CREATECLUSTER=/etc/postgresql-common/createcluster.conf

say() { echo "postgres: $*" >&2; }

as_postgres() { runuser -u postgres -- "$@"; }

# root_only PATH: PATH names itself (no symlink, no '..') and it and every folder above it are
# root's and writable by no one else: nothing in it can have been put there by a service account.
root_only() {
  local path=$1
  [[ $(realpath -e -- "$path" 2>/dev/null) == "$path" ]] || return 1
  while [[ $path != / ]]; do
    [[ -n $(find "$path" -maxdepth 0 -user root -group root ! -perm /022 2>/dev/null) ]] || return 1
    path=$(dirname -- "$path")
  done
}

# The PostgreSQL versions installed from Debian's packages (postgresql-N), oldest first: N all
# digits, its server binary root's own (root_only).
pg_versions() {
  local pkg status
  dpkg-query -W -f='${Package}\t${Status}\n' 'postgresql-[0-9]*' 2>/dev/null \
    | while IFS=$'\t' read -r pkg status; do
        [[ $status == *" installed" && $pkg =~ ^postgresql-([0-9]+)$ ]] || continue
        root_only "/usr/lib/postgresql/${BASH_REMATCH[1]}/bin/postgres" && echo "${BASH_REMATCH[1]}"
      done | sort -n
}

# The bin folder of the version that made $DATA, else of the newest version installed. The
# path is built from the package list only: $DATA/PG_VERSION is postgres's to write, so it is
# read as postgres and can only pick one of the installed versions, never name a folder.
pg_bin() {
  local versions ver
  versions=$(pg_versions)
  [[ -n $versions ]] || return 1
  if [[ -e $DATA/PG_VERSION || -L $DATA/PG_VERSION ]]; then
    ver=$(as_postgres timeout 10 head -c 16 -- "$DATA/PG_VERSION" 2>/dev/null | tr -d '[:space:]')
    if ! grep -qxF -- "$ver" <<<"$versions"; then
      say "$DATA/PG_VERSION names no installed version (installed: ${versions//$'\n'/ })"
      return 1
    fi
  else
    ver=$(tail -1 <<<"$versions")
  fi
  echo "/usr/lib/postgresql/$ver/bin"
}

no_default_cluster() {
  # Debian's postgresql-common creates (and starts) a cluster "main" on 5432 when a server
  # package is installed, unless createcluster.conf says otherwise: say so before installing.
  mkdir -p "$(dirname "$CREATECLUSTER")"
  if ! grep -qsE '^\s*create_main_cluster\s*=\s*false' "$CREATECLUSTER"; then
    if grep -qsE '^\s*create_main_cluster' "$CREATECLUSTER"; then
      sed -i -E 's/^\s*create_main_cluster\s*=.*/create_main_cluster = false/' "$CREATECLUSTER"
    else
      printf '# adaptnas scripts/postgres.sh: no default cluster\ncreate_main_cluster = false\n' \
        >>"$CREATECLUSTER"
    fi
  fi
}

install() {
  if [[ -n $(pg_bin) ]] && id postgres >/dev/null 2>&1; then return 0; fi
  say "installing Debian's postgresql (first time)"
  apt_install postgresql
  [[ -n $(pg_bin) ]] || { say "install failed: no postgres binary"; return 1; }
}

running() {
  local bin
  bin=$(pg_bin) || return 1
  [[ -f $DATA/postmaster.pid ]] && "$bin/pg_isready" -q -h 127.0.0.1 -p "$PORT" 2>/dev/null
}

dirs() {
  safe_dir "$STATE_ROOT" root 711    # postgres passes through to its own folder, lists nothing
  safe_dir "$SECRET" root 700
  safe_dir "$STATE" postgres 700
  safe_dir "$SOCK" postgres 700
}

init() {
  local bin=$1
  [[ -f $DATA/PG_VERSION ]] && return 0
  say "initialising $DATA"
  # Local socket: peer (the OS user postgres is the role postgres); TCP on loopback: password.
  as_postgres "$bin/initdb" -D "$DATA" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
    -E UTF8 >/dev/null
  # Appended as postgres: the folder is postgres's, and root writes through no link it planted.
  as_postgres tee -a -- "$DATA/postgresql.conf" >/dev/null <<EOF
# adaptnas test server: loopback only, own port and socket, speed over durability
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCK'
unix_socket_permissions = 0700
password_encryption = 'scram-sha-256'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
}

# psql as postgres over the socket, the SQL on standard input (never in argv).
psql_stdin() {
  local bin=$1
  as_postgres "$bin/psql" -h "$SOCK" -p "$PORT" -U postgres -d postgres -qtA -v ON_ERROR_STOP=1 -f -
}

ensure_role() {
  local bin=$1
  if [[ ! -s $PASSFILE ]]; then
    (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=\n' >"$PASSFILE")
  fi
  chmod 600 "$PASSFILE"
  local pass exists
  pass=$(<"$PASSFILE")
  exists=$(psql_stdin "$bin" <<<"SELECT 1 FROM pg_roles WHERE rolname = '$ROLE';")
  local verb=ALTER
  [[ -n $exists ]] || verb=CREATE
  # The password travels on the pipe: a here-string is not an argument of any process.
  psql_stdin "$bin" >/dev/null <<<"SET log_statement = 'none'; $verb ROLE $ROLE LOGIN PASSWORD '$pass';"
  if [[ -z $(psql_stdin "$bin" <<<"SELECT 1 FROM pg_database WHERE datname = '$DB';") ]]; then
    psql_stdin "$bin" >/dev/null <<<"CREATE DATABASE $DB OWNER $ROLE;"
  fi
}

start() {
  [[ $(id -u) == 0 ]] || { say "needs root (it runs the server as user postgres)"; return 1; }
  no_default_cluster  # also for a version installed later (an upgrade, another package)
  install
  dirs
  local bin
  bin=$(pg_bin)
  init "$bin"
  if ! running; then
    # A server killed a moment ago may still hold its lock file: one retry after a pause.
    as_postgres "$bin/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start >/dev/null 2>&1 \
      || { sleep 3; as_postgres "$bin/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start >/dev/null; } \
      || { say "failed to start; last lines of $LOG:"; as_postgres tail -5 -- "$LOG" >&2; return 1; }
    say "started on 127.0.0.1:$PORT ($("$bin/postgres" --version))"
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
  echo "postgresql+psycopg2://$ROLE:$(<"$PASSFILE")@127.0.0.1:$PORT/$DB"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) running ;;
  url) url ;;
  *) echo "usage: $0 start|stop|status|url" >&2; exit 2 ;;
esac
