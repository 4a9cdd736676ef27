"""``fidelia backup PATH`` and ``fidelia restore PATH``.

SQLite: SQLite's online backup API copies the database page by page inside one read
transaction, so the copy is the database at one instant, taken while the server keeps
serving (in WAL mode readers never block writers and writers do not block the copy). The
copy is written next to PATH and renamed into place once its integrity check passes, so
PATH is either the old backup or a whole new one.

PostgreSQL: ``pg_dump --format=custom`` (one consistent snapshot, also while serving),
restored with ``pg_restore``. For point-in-time recovery, add WAL archiving and base
backups: deploy/postgresql/ and docs/operations.md "Backups".
"""

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import make_url

from fidelia.kit.db import sqlite_path


class BackupError(Exception):
    pass


def _pg_tool(name: str) -> str:
    import glob

    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    path = found[-1] if found else shutil.which(name)
    if path is None:
        raise BackupError(f"{name} not found: install the PostgreSQL client tools")
    return path


def _libpq_url(url: str) -> str:
    """The URL as libpq takes it (no SQLAlchemy driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def backup(url: str, target: Path) -> Path:
    target = target.expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    source = sqlite_path(url)
    if url.startswith("sqlite"):
        if source is None or not source.exists():
            raise BackupError(f"no SQLite database at {source}")
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)  # all pages in one step: one read transaction, one instant
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            verdict = dst.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            dst.close()
            src.close()
        if verdict != "ok":
            partial.unlink(missing_ok=True)
            raise BackupError(f"the copy failed its integrity check: {verdict}")
    else:
        done = subprocess.run(
            [_pg_tool("pg_dump"), "--format=custom", "--no-owner", "--file", str(partial)]
            + [_libpq_url(url)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            partial.unlink(missing_ok=True)
            raise BackupError(f"pg_dump failed: {done.stderr.strip()}")
    os.replace(partial, target)
    return target


def restore(url: str, source: Path, *, force: bool = False) -> None:
    """Load a backup into the configured database, which must be empty (or ``force``)."""
    source = source.expanduser().resolve()
    if not source.exists():
        raise BackupError(f"no backup at {source}")
    if url.startswith("sqlite"):
        target = sqlite_path(url)
        if target is None:
            raise BackupError("restore needs a file-backed SQLite database")
        if target.exists() and target.stat().st_size and not force:
            raise BackupError(f"{target} exists: stop the server, then restore with --force")
        target.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        release_leases(url)
        return
    args = [_pg_tool("pg_restore"), "--no-owner", "--exit-on-error", "--single-transaction"]
    if force:
        args += ["--clean", "--if-exists"]
    done = subprocess.run(
        [*args, "--dbname", _libpq_url(url), str(source)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise BackupError(f"pg_restore failed: {done.stderr.strip()}")
    release_leases(url)


def release_leases(url: str) -> None:
    """The workers that held outbox leases at backup time are not the restored platform's:
    their rows go back to the queue at once (delivery is at least once anyway)."""
    from sqlalchemy import update

    from fidelia.kit.db import Database
    from fidelia.models import OutboxMessage

    db = Database(url, pool_size=1)
    try:
        with db.session() as session:
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.status == "pending", OutboxMessage.locked_until.is_not(None))
                .values(locked_until=None)
            )
    finally:
        db.dispose()
