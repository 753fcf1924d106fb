#!/usr/bin/env bash
# Throwaway PostgreSQL for tests and CI, from the Debian `postgresql` package.
#
#   scripts/pg-temp.sh start <dir> [port]   # prints one line: postgres://factory@127.0.0.1:<port>/factory_test
#   scripts/pg-temp.sh stop  <dir>          # stops the server and removes <dir>
#
# <dir> holds everything: the cluster (<dir>/data), the server log (<dir>/log) and the Unix socket.
# Use a fresh directory, e.g. `dir=$(mktemp -d)`. Only the URL goes to stdout; everything else goes
# to stderr. Works as a normal user and as root: initdb refuses to run as root, so as root the
# server runs as the `postgres` system user (created by the Debian package) and <dir> is chowned to
# it. If that user cannot reach <dir> (e.g. it is under /root), the instance lives in a directory
# made with mktemp under /tmp and <dir>/instance links to it.
# If the binaries are missing and we are root with apt-get, the `postgresql` package is installed;
# a system cluster that the package install may start is left alone (we never use it).
set -euo pipefail

DEFAULT_PORT=55432
DB_USER=factory
DB_NAME=factory_test
MARKER=.pg-temp

log() { printf 'pg-temp: %s\n' "$*" >&2; }

usage() {
  cat >&2 <<'EOF'
usage: scripts/pg-temp.sh start <dir> [port]   (default port 55432)
       scripts/pg-temp.sh stop <dir>
EOF
  exit 2
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# Newest /usr/lib/postgresql/<ver>/bin that has initdb, or empty.
find_pg_bin() {
  local d best='' best_ver=-1 ver
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] || continue
    ver=$(basename "$(dirname "$d")")
    ver=${ver%%.*}
    [[ $ver =~ ^[0-9]+$ ]] || continue
    if [ "$ver" -gt "$best_ver" ]; then best_ver=$ver; best=$d; fi
  done
  printf '%s' "$best"
}

ensure_pg_bin() {
  PG_BIN=$(find_pg_bin)
  if [ -z "$PG_BIN" ]; then
    if is_root && command -v apt-get >/dev/null 2>&1; then
      log "PostgreSQL binaries not found; installing the Debian postgresql package"
      apt-get update -qq >&2 || { log "apt-get update failed"; exit 1; }
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2 \
        || { log "apt-get install postgresql failed"; exit 1; }
      PG_BIN=$(find_pg_bin)
    fi
  fi
  if [ -z "$PG_BIN" ]; then
    log "error: PostgreSQL binaries not found (no /usr/lib/postgresql/*/bin/initdb)."
    log "Install the Debian package: apt-get install postgresql (needs root)."
    exit 1
  fi
}

# Runs a server-side command (initdb, pg_ctl) as the owner of the cluster.
as_pg() {
  if is_root; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# The directory that really holds data/log/socket for <dir> (see the header).
instance_dir() {
  local dir=$1
  if [ -L "$dir/instance" ]; then
    readlink -f "$dir/instance"
  else
    printf '%s' "$dir"
  fi
}

cmd_start() {
  local dir=$1 port=$2
  [[ $port =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] \
    || { log "error: invalid port '$port'"; exit 2; }

  ensure_pg_bin
  log "using $PG_BIN"

  if is_root && ! id -u postgres >/dev/null 2>&1; then
    log "error: running as root but there is no 'postgres' system user to run the server as"
    exit 1
  fi

  # <dir> must be new, empty (mktemp -d) or one this script made: `stop` deletes it.
  if [ -e "$dir" ] && [ ! -e "$dir/$MARKER" ] && [ -n "$(ls -A -- "$dir" 2>/dev/null)" ]; then
    log "error: $dir is not empty and was not made by pg-temp.sh; use a new or empty directory"
    exit 1
  fi
  mkdir -p "$dir"
  [ -e "$dir/$MARKER" ] || : >"$dir/$MARKER"

  # Refuse early when something already listens on the port (a clearer message than the server log).
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    log "error: port $port on 127.0.0.1 is already in use; pass another port"
    exit 1
  fi

  local inst=$dir
  if is_root; then
    if [ -L "$dir/instance" ]; then
      inst=$(instance_dir "$dir")
    else
      chown postgres:postgres "$dir"
      chmod 700 "$dir"
      if ! runuser -u postgres -- test -w "$dir" 2>/dev/null || ! runuser -u postgres -- test -x "$dir" 2>/dev/null; then
        inst=$(mktemp -d /tmp/pg-temp.XXXXXX)
        : >"$inst/$MARKER"
        chown postgres:postgres "$inst"
        chmod 700 "$inst"
        ln -s "$inst" "$dir/instance"
        log "user postgres cannot reach $dir; the instance lives in $inst"
      fi
    fi
  fi

  local data=$inst/data logfile=$inst/log started=0
  fail() {
    log "error: $*"
    if [ -f "$logfile" ]; then
      log "---- last lines of $logfile ----"
      tail -n 40 "$logfile" >&2 || true
      log "--------------------------------"
    fi
    if [ "$started" -eq 1 ]; then
      as_pg "$PG_BIN/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
    fi
    exit 1
  }

  # The Unix socket path must fit in sockaddr_un (107 bytes); otherwise TCP only.
  local sockdir=$inst
  if [ $(( ${#inst} + ${#port} + 10 )) -gt 100 ]; then
    log "warning: $inst is too long for a Unix socket path; listening on TCP only"
    sockdir=''
  fi

  if [ -f "$data/PG_VERSION" ]; then
    if as_pg "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
      fail "a server is already running on $data; run: $0 stop $dir"
    fi
    log "reusing the existing cluster in $data"
  else
    as_pg "$PG_BIN/initdb" -D "$data" -A trust -U "$DB_USER" --no-sync -E UTF8 --locale=C >"$inst/initdb.log" 2>&1 \
      || { cat "$inst/initdb.log" >&2; fail "initdb failed"; }
  fi

  started=1
  as_pg "$PG_BIN/pg_ctl" -D "$data" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k '$sockdir' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    -l "$logfile" start >&2 \
    || fail "the server did not start (port $port)"

  local exists
  exists=$("$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U "$DB_USER" -d postgres -X -A -t -v ON_ERROR_STOP=1 \
    -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'" 2>&1) \
    || fail "cannot connect to the server: $exists"
  if [ "$exists" != "1" ]; then
    "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U "$DB_USER" "$DB_NAME" >&2 \
      || fail "createdb $DB_NAME failed"
  fi

  log "PostgreSQL running: data $data, log $logfile, port $port"
  printf 'postgres://%s@127.0.0.1:%s/%s\n' "$DB_USER" "$port" "$DB_NAME"
}

cmd_stop() {
  local dir=$1
  if [ ! -e "$dir" ]; then
    log "$dir does not exist; nothing to stop"
    return 0
  fi
  local inst
  inst=$(instance_dir "$dir")
  PG_BIN=$(find_pg_bin)
  if [ -f "$inst/data/PG_VERSION" ]; then
    if [ -n "$PG_BIN" ]; then
      if as_pg "$PG_BIN/pg_ctl" -D "$inst/data" status >/dev/null 2>&1; then
        as_pg "$PG_BIN/pg_ctl" -D "$inst/data" -m immediate stop >&2 \
          || log "warning: pg_ctl stop failed for $inst/data"
      else
        log "no server running on $inst/data"
      fi
    else
      log "warning: PostgreSQL binaries not found; cannot stop $inst/data"
    fi
  fi
  # Only delete directories this script made (marker file), never an arbitrary path given by mistake.
  if [ "$inst" != "$dir" ] && [ -e "$inst/$MARKER" ]; then
    rm -rf -- "$inst"
  fi
  if [ -e "$dir/$MARKER" ]; then
    rm -rf -- "$dir"
  elif [ -d "$dir" ] && [ -z "$(ls -A -- "$dir" 2>/dev/null)" ]; then
    rmdir -- "$dir"
  else
    log "warning: $dir was not created by pg-temp.sh (no $MARKER file); not removing it"
  fi
}

[ $# -ge 2 ] || usage
action=$1
[ -n "$2" ] || usage
dir=$(realpath -m -- "$2")
[ "$dir" != "/" ] || { log "error: refusing to use /"; exit 2; }
cd /   # the postgres user may not be able to enter the caller's working directory

case $action in
  start)
    [ $# -le 3 ] || usage
    cmd_start "$dir" "${3:-$DEFAULT_PORT}"
    ;;
  stop)
    [ $# -eq 2 ] || usage
    cmd_stop "$dir"
    ;;
  *) usage ;;
esac
