#!/bin/sh
# Point-in-time recovery: rebuild a data directory from a base backup and replay the
# archived WAL up to TARGET_TIME (e.g. "2025-03-01 14:30:00+00", just before the mistake).
# Usage: restore-pitr.sh BASE_BACKUP_DIR NEW_DATA_DIR "TARGET_TIME"
# Then start PostgreSQL on NEW_DATA_DIR: it replays, pauses at the target, and is promoted
# with `SELECT pg_wal_replay_resume();` (or promotes at once: recovery_target_action).
# Afterwards: `fidelia check`, then start the workers and web processes.
set -eu
base=$1; data=$2; target=$3
archive=${FIDELIA_WAL_ARCHIVE:-/var/backups/fidelia/wal}
[ -e "$data" ] && { echo "restore-pitr: $data exists; refusing to overwrite" >&2; exit 1; }
mkdir -p "$data"; chmod 700 "$data"
tar -xzf "$base/base.tar.gz" -C "$data"
mkdir -p "$data/pg_wal"
[ -f "$base/pg_wal.tar.gz" ] && tar -xzf "$base/pg_wal.tar.gz" -C "$data/pg_wal"
cat >> "$data/postgresql.auto.conf" <<CONF
restore_command = 'cp "$archive/%f" "%p"'
recovery_target_time = '$target'
recovery_target_action = 'promote'
CONF
touch "$data/recovery.signal"
echo "ready: start PostgreSQL on $data; it replays WAL up to $target and is promoted"
