#!/bin/sh
# One backup of isvapp into a folder, named by the time (isvapp-YYYYmmddTHHMMSSZ), then the
# backups there older than KEEP days removed (only after this one succeeded).
#
#   deploy/backup.sh [DIR] [KEEP]      (defaults: /var/backups/isvapp, 14)
#
# isvapp-backup.service runs it daily (isvapp-backup.timer). It calls `isvapp backup PATH` from
# the clone's .venv, whatever that command writes at PATH (a file or a folder).
set -eu
dir="${1:-/var/backups/isvapp}"
keep="${2:-14}"
isvapp="$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/isvapp"
if [ ! -d "$dir" ] || [ ! -w "$dir" ]; then
  echo "backup: $dir is not a folder $(id -un) can write: install -d -o $(id -un) -m 700 $dir" >&2
  exit 1
fi
umask 077
target="$dir/isvapp-$(date -u +%Y%m%dT%H%M%SZ)"
"$isvapp" backup "$target"
echo "backup: wrote $target"
find "$dir" -mindepth 1 -maxdepth 1 -name 'isvapp-*' -mtime +"$keep" ! -path "$target" -exec rm -rf {} +
