#!/bin/sh
# archive_command: copy one finished WAL segment to the archive, never overwriting one
# already there (PostgreSQL retries on failure, so a non-zero exit is safe).
# Usage (by PostgreSQL): archive-wal.sh %p %f     Archive: $FIDELIA_WAL_ARCHIVE
set -eu
archive=${FIDELIA_WAL_ARCHIVE:-/var/backups/fidelia/wal}
mkdir -p "$archive"
if [ -f "$archive/$2" ]; then
  cmp -s "$1" "$archive/$2" && exit 0   # archived before a crash: same file, done
  echo "archive-wal: $2 already archived with other contents" >&2
  exit 1
fi
cp "$1" "$archive/$2.tmp"
sync "$archive/$2.tmp" 2> /dev/null || sync
mv "$archive/$2.tmp" "$archive/$2"
