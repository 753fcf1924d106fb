#!/usr/bin/env bash
# Removes Docker containers that Factory started for test/preview environments (label factory.task-id)
# once they are older than a maximum age. Factory removes them itself when a task ends or a PR is
# merged; this is the safety net for anything left behind (a crash, a PR nobody closed).
#
#   cleanup-containers.sh [--max-age-hours N] [--dry-run]
#
# The age comes from the factory.created-at label when it is there (ISO time or epoch seconds/ms),
# otherwise from the container's creation time. Without Docker, or with its daemon down, the script
# says so and exits 0: there is nothing it could clean. Exit 1 only when a removal failed.
# Environment: FACTORY_CLEANUP_MAX_AGE_HOURS (default 168), DOCKER (the docker command, default docker).
set -euo pipefail

max_age_hours="${FACTORY_CLEANUP_MAX_AGE_HOURS:-168}"
docker_cmd="${DOCKER:-docker}"
dry_run=0
label="factory.task-id"

usage() {
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
  case "$1" in
    --max-age-hours) max_age_hours="${2:-}"; shift 2 ;;
    --max-age-hours=*) max_age_hours="${1#*=}"; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "cleanup-containers: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

if ! [[ "$max_age_hours" =~ ^[0-9]+$ ]]; then
  echo "cleanup-containers: --max-age-hours must be a whole number of hours, got '$max_age_hours'" >&2
  exit 2
fi

if ! command -v "$docker_cmd" >/dev/null 2>&1; then
  echo "cleanup-containers: docker is not installed ($docker_cmd not found); nothing to clean"
  exit 0
fi
if ! "$docker_cmd" info >/dev/null 2>&1; then
  echo "cleanup-containers: the Docker daemon is not reachable (not running, or this user is not in the docker group); nothing cleaned"
  exit 0
fi

# Seconds since the epoch for an ISO time or epoch seconds/milliseconds; fails on anything else.
to_epoch() {
  local v="$1"
  if [ -z "$v" ] || [ "$v" = "<no value>" ]; then return 1; fi
  if [[ "$v" =~ ^[0-9]+$ ]]; then
    if [ "${#v}" -ge 13 ]; then echo $((v / 1000)); else echo "$v"; fi
    return 0
  fi
  date -u -d "$v" +%s 2>/dev/null
}

now=$(date -u +%s)
cutoff=$((now - max_age_hours * 3600))
ids=$("$docker_cmd" ps -a --filter "label=$label" --format '{{.ID}}')
if [ -z "$ids" ]; then
  echo "cleanup-containers: no Factory containers"
  exit 0
fi

removed=0
kept=0
failed=0
for id in $ids; do
  if ! info=$("$docker_cmd" inspect --format \
    '{{.Created}}|{{index .Config.Labels "factory.created-at"}}|{{.Name}}|{{index .Config.Labels "factory.task-id"}}|{{index .Config.Labels "factory.env-type"}}' \
    "$id" 2>/dev/null); then
    echo "cleanup-containers: $id vanished while looking at it; skipped"
    continue
  fi
  IFS='|' read -r created labelled name task env_type <<<"$info"
  if ! ts=$(to_epoch "$labelled") && ! ts=$(to_epoch "$created"); then
    echo "cleanup-containers: cannot tell the age of $id ${name#/}; left alone"
    kept=$((kept + 1))
    continue
  fi
  age_hours=$(((now - ts) / 3600))
  what="${name#/} (task ${task}, ${env_type:-unknown} environment, ${age_hours} h old)"
  if [ "$ts" -gt "$cutoff" ]; then
    kept=$((kept + 1))
    continue
  fi
  if [ "$dry_run" -eq 1 ]; then
    echo "cleanup-containers: would remove $id $what"
    removed=$((removed + 1))
  elif "$docker_cmd" rm -f "$id" >/dev/null; then
    echo "cleanup-containers: removed $id $what"
    removed=$((removed + 1))
  else
    echo "cleanup-containers: could not remove $id $what" >&2
    failed=$((failed + 1))
  fi
done

verb="removed"
[ "$dry_run" -eq 1 ] && verb="would remove"
echo "cleanup-containers: $verb $removed, kept $kept younger than ${max_age_hours} h, $failed failed"
[ "$failed" -eq 0 ]
