#!/usr/bin/env bash
# Installs Factory as a systemd service. Safe to run again: every step checks what is already there
# (an existing .env and config.yml are never overwritten, the data directory is never touched).
#
#   sudo deploy/install.sh [--dry-run] [--prefix DIR] [--user NAME] [--systemd-dir DIR] [--bin-dir DIR]
#                          [--docker] [--no-systemctl]
#
#   --dry-run          print every action instead of doing it (no root needed)
#   --prefix DIR       installation directory (default /opt/factory); the checkout this script lives
#                      in is used in place when it is already there, otherwise it is copied there
#   --user NAME        service account (default factory), created when missing
#   --systemd-dir DIR  where the unit files go (default /etc/systemd/system)
#   --bin-dir DIR      where the `factory` command is linked (default /usr/local/bin)
#   --docker           add the service account to the docker group, for agents' preview environments.
#                      Membership of that group is equivalent to root on this machine: agents run
#                      arbitrary commands, so enable it only on a host dedicated to Factory.
#   --no-systemctl     install the unit files but do not run systemctl (images, tests)
set -euo pipefail

PREFIX=/opt/factory
SERVICE_USER=factory
SYSTEMD_DIR=/etc/systemd/system
BIN_DIR=/usr/local/bin
DRY_RUN=0
WITH_DOCKER=0
SYSTEMCTL=1

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1; shift ;;
    --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
    --prefix=*) PREFIX="${1#*=}"; shift ;;
    --user) SERVICE_USER="${2:?--user needs a name}"; shift 2 ;;
    --user=*) SERVICE_USER="${1#*=}"; shift ;;
    --systemd-dir) SYSTEMD_DIR="${2:?--systemd-dir needs a directory}"; shift 2 ;;
    --systemd-dir=*) SYSTEMD_DIR="${1#*=}"; shift ;;
    --bin-dir) BIN_DIR="${2:?--bin-dir needs a directory}"; shift 2 ;;
    --bin-dir=*) BIN_DIR="${1#*=}"; shift ;;
    --docker) WITH_DOCKER=1; shift ;;
    --no-systemctl) SYSTEMCTL=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

if ! [[ "$SERVICE_USER" =~ ^[a-z_][a-z0-9_-]*$ ]]; then
  echo "install.sh: --user must be a plain account name, got '$SERVICE_USER'" >&2
  exit 2
fi
case "$PREFIX" in
  /*) PREFIX="${PREFIX%/}" ;;
  *) echo "install.sh: --prefix must be an absolute path, got '$PREFIX'" >&2; exit 2 ;;
esac

SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
DATA_DIR="$PREFIX/data"
HOME_DIR="$PREFIX/home"
UNITS=(factory.service factory-cleanup.service factory-cleanup.timer)

step() { printf '\n==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

# Runs a command, or only shows it in dry-run mode.
run() {
  if [ "$DRY_RUN" -eq 1 ]; then
    printf '    [dry-run] %s\n' "$*"
  else
    printf '    + %s\n' "$*"
    "$@"
  fi
}

# Runs a command inside the installation directory.
in_prefix() {
  if [ "$DRY_RUN" -eq 1 ]; then
    printf '    [dry-run] (cd %s && %s)\n' "$PREFIX" "$*"
  else
    printf '    + (cd %s && %s)\n' "$PREFIX" "$*"
    (cd "$PREFIX" && "$@")
  fi
}

# A unit file with the installation directory and account of this install.
render_unit() {
  sed -e "s#/opt/factory#${PREFIX}#g" -e "s#^User=factory\$#User=${SERVICE_USER}#" -e "s#^Group=factory\$#Group=${SERVICE_USER}#" "$1"
}

# ---------------------------------------------------------------------------------------------------
step "checking prerequisites"
if [ "$(id -u)" -ne 0 ]; then
  if [ "$DRY_RUN" -eq 1 ]; then
    note "not root: fine for --dry-run; the real install needs sudo"
  else
    die "run as root (sudo $0 $*), or add --dry-run to see what would happen"
  fi
fi
command -v node >/dev/null 2>&1 || die "Node.js is not installed: install Node.js 20 or newer (https://nodejs.org or your distribution's nodejs package)"
NODE_VERSION="$(node -p 'process.versions.node')"
[ "${NODE_VERSION%%.*}" -ge 20 ] || die "Node.js $NODE_VERSION is too old: Factory needs 20 or newer"
note "node $NODE_VERSION at $(command -v node)"
[ "$(command -v node)" = /usr/bin/node ] || note "note: the unit runs /usr/bin/node; edit ExecStart in $SYSTEMD_DIR/factory.service if node lives elsewhere"
command -v npm >/dev/null 2>&1 || die "npm is not installed (it ships with Node.js; on Debian: apt-get install npm)"
command -v git >/dev/null 2>&1 || die "git is not installed: apt-get install git"
note "$(git --version)"
[ -f "$SOURCE/package.json" ] && [ -f "$SOURCE/deploy/factory.service" ] || die "run this script from a Factory checkout (deploy/install.sh), not a copy of the file"

# ---------------------------------------------------------------------------------------------------
step "creating the service account $SERVICE_USER"
if id -u "$SERVICE_USER" >/dev/null 2>&1; then
  note "account $SERVICE_USER exists"
else
  NOLOGIN="$(command -v nologin || echo /usr/sbin/nologin)"
  run useradd --system --user-group --home-dir "$HOME_DIR" --shell "$NOLOGIN" "$SERVICE_USER"
fi
if [ "$WITH_DOCKER" -eq 1 ]; then
  if getent group docker >/dev/null 2>&1; then
    run usermod -aG docker "$SERVICE_USER"
  else
    note "no docker group on this machine: install Docker first, then run this script again with --docker"
  fi
fi

# ---------------------------------------------------------------------------------------------------
step "creating directories under $PREFIX"
run mkdir -p "$PREFIX" "$DATA_DIR" "$HOME_DIR"
# Code stays owned by root (agents cannot change Factory); data and the agents' home belong to the service.
run chown "$SERVICE_USER:$SERVICE_USER" "$DATA_DIR" "$HOME_DIR"
run chmod 750 "$DATA_DIR" "$HOME_DIR"

# ---------------------------------------------------------------------------------------------------
step "copying the source into $PREFIX"
TARGET_REAL="$(cd "$PREFIX" 2>/dev/null && pwd -P || echo "$PREFIX")"
if [ "$SOURCE" = "$TARGET_REAL" ]; then
  note "$SOURCE is the installation directory: using it in place"
else
  EXCLUDES=(--exclude=/node_modules --exclude=/dist --exclude=/data --exclude=/home --exclude=/.env --exclude=/test-results)
  # The operator's config.yml is never replaced; a fresh install gets the shipped one.
  [ -f "$PREFIX/config.yml" ] && EXCLUDES+=(--exclude=/config.yml) && note "keeping the existing $PREFIX/config.yml"
  if command -v rsync >/dev/null 2>&1; then
    run rsync -a --no-owner --no-group "${EXCLUDES[@]}" "$SOURCE/" "$PREFIX/"
  else
    TAR_EXCLUDES=()
    for e in "${EXCLUDES[@]}"; do TAR_EXCLUDES+=("--exclude=.${e#--exclude=}"); done
    if [ "$DRY_RUN" -eq 1 ]; then
      printf '    [dry-run] tar -C %s %s -cf - . | tar -C %s -xf -\n' "$SOURCE" "${TAR_EXCLUDES[*]}" "$PREFIX"
    else
      printf '    + tar -C %s -cf - . | tar -C %s -xf -\n' "$SOURCE" "$PREFIX"
      tar -C "$SOURCE" "${TAR_EXCLUDES[@]}" -cf - . | tar -C "$PREFIX" --no-same-owner -xf -
    fi
  fi
fi

# ---------------------------------------------------------------------------------------------------
step "installing dependencies (npm ci)"
in_prefix npm ci --no-audit --no-fund

step "building (npm run build)"
in_prefix npm run build

# The service runs the bundle in dist/: the compilers, tsx and the test tools are not needed to run it.
step "removing development dependencies (npm prune --omit=dev)"
in_prefix npm prune --omit=dev --no-audit --no-fund

# ---------------------------------------------------------------------------------------------------
step "creating .env"
ENV_FILE="$PREFIX/.env"
if [ -f "$ENV_FILE" ]; then
  note "$ENV_FILE exists: kept as it is"
else
  run cp "$PREFIX/.env.example" "$ENV_FILE"
  # An empty FACTORY_HOST= (and friends) would hide the unit's defaults: leave those commented out.
  run sed -i -E 's/^(FACTORY_CONFIG|FACTORY_DATA_DIR|FACTORY_HOST|FACTORY_PORT|FACTORY_LOG_LEVEL|NODE_ENV)=$/# \1=/' "$ENV_FILE"
fi
# Secrets: readable by the service account only (systemd reads it as root before starting the service).
run chown "$SERVICE_USER:$SERVICE_USER" "$ENV_FILE"
run chmod 600 "$ENV_FILE"

# ---------------------------------------------------------------------------------------------------
step "installing systemd units into $SYSTEMD_DIR"
run mkdir -p "$SYSTEMD_DIR"
for unit in "${UNITS[@]}"; do
  if [ "$DRY_RUN" -eq 1 ]; then
    printf '    [dry-run] install %s/deploy/%s -> %s/%s (paths under %s, User=%s)\n' "$PREFIX" "$unit" "$SYSTEMD_DIR" "$unit" "$PREFIX" "$SERVICE_USER"
  else
    tmp="$(mktemp)"
    render_unit "$PREFIX/deploy/$unit" >"$tmp"
    if [ -f "$SYSTEMD_DIR/$unit" ] && cmp -s "$tmp" "$SYSTEMD_DIR/$unit"; then
      note "$SYSTEMD_DIR/$unit is up to date"
      rm -f "$tmp"
    else
      printf '    + install -m 644 %s %s/%s\n' "$unit" "$SYSTEMD_DIR" "$unit"
      install -m 644 "$tmp" "$SYSTEMD_DIR/$unit"
      rm -f "$tmp"
    fi
  fi
done
if [ "$SYSTEMCTL" -eq 0 ]; then
  note "--no-systemctl: run systemctl daemon-reload && systemctl enable factory.service factory-cleanup.timer yourself"
elif [ -d /run/systemd/system ] || [ "$DRY_RUN" -eq 1 ]; then
  run systemctl daemon-reload
  # Enabled for the next boot, not started: the operator fills in .env first.
  run systemctl enable factory.service
  run systemctl enable factory-cleanup.timer
else
  note "systemd is not running here: skipped systemctl daemon-reload and enable (run them on the real host)"
fi

# ---------------------------------------------------------------------------------------------------
step "linking the factory command into $BIN_DIR"
run mkdir -p "$BIN_DIR"
run ln -sfn "$PREFIX/bin/factory.js" "$BIN_DIR/factory"

# ---------------------------------------------------------------------------------------------------
step "next steps"
cat <<EOF
    1. Secrets: edit $ENV_FILE (at least GITHUB_TOKEN and FACTORY_AUTH_TOKEN; see docs/configuration.md).
    2. Settings: edit $PREFIX/config.yml (default_org, repos, telegram, plane...).
    3. Claude Code: install it (npm install -g @anthropic-ai/claude-code) and either set
       ANTHROPIC_API_KEY in .env or log in once as the service user: sudo -u $SERVICE_USER -H claude
    4. Check everything: sudo -u $SERVICE_USER $BIN_DIR/factory doctor
    5. Start: systemctl start factory && systemctl status factory
       Logs: journalctl -u factory -f
    6. HTTPS: deploy/nginx/factory.conf (and deploy/traefik/README.md for preview environments).
EOF
if [ "$DRY_RUN" -eq 0 ] && [ "$SYSTEMCTL" -eq 1 ] && command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet factory.service 2>/dev/null; then
  echo "    Factory is running: restart it to use this version: systemctl restart factory"
fi
if [ "$DRY_RUN" -eq 1 ]; then
  printf '\nDry run: nothing was changed.\n'
fi
