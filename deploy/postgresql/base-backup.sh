#!/bin/sh
# Nightly (cron or a systemd timer): a base backup for point-in-time recovery, plus a
# logical dump (`fidelia backup`: pg_dump's custom format, restorable into any version).
# Base backups older than $KEEP_DAYS and the WAL segments no base backup needs are removed.
#   PGHOST, PGPORT, PGUSER (a REPLICATION role), FIDELIA_* as for the services.
set -eu
root=${FIDELIA_BACKUP_ROOT:-/var/backups/fidelia}
keep=${KEEP_DAYS:-14}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$root/base" "$root/dumps"
pg_basebackup --pgdata="$root/base/$stamp" --format=tar --gzip --wal-method=stream \
  --checkpoint=fast --label="fidelia-$stamp"
fidelia backup "$root/dumps/fidelia-$stamp.pgdump"
find "$root/base" -mindepth 1 -maxdepth 1 -type d -mtime +"$keep" -exec rm -rf {} +
find "$root/dumps" -name '*.pgdump' -mtime +"$keep" -delete
oldest=$(ls "$root/base" | sort | head -n 1)
# The WAL the oldest kept base backup starts from: anything before it is of no use.
label=$(tar -xzOf "$root/base/$oldest/base.tar.gz" backup_label 2> /dev/null \
  | sed -n 's/^START WAL LOCATION: .* (file \(.*\))$/\1/p')
[ -n "$label" ] && pg_archivecleanup "$root/wal" "$label"
echo "base backup $stamp done"
