"""PostgreSQL's own account of a credit run (``bench/run.py --pg-stats``): the statements of
Fidelia's database by execution time, from ``pg_stat_statements``, counted from the run's
start. What the profiles of the Python processes cannot show: which statement PostgreSQL
spends its time on, how many rows it returns a call. (Its times are wall times inside the
server, waiting for a core included: compare statements within one run, not runs.)"""

from pathlib import Path

import psycopg

# The bench's server with the extension loaded (``PostgresServer(settings=...)``).
SETTINGS = {
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "all",  # the statements of functions and triggers too
}
_TOP = """
SELECT calls, rows, total_exec_time, total_exec_time * 1000 / GREATEST(rows, 1),
       regexp_replace(query, '\\s+', ' ', 'g')
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY total_exec_time DESC
LIMIT %s
"""


def _connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def reset(url: str) -> None:
    """Forget what was counted so far (the extension made on first use)."""
    with _connect(url) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("SELECT pg_stat_statements_reset()")


def top(url: str, limit: int = 20) -> list[str]:
    """The ``limit`` statements that took the longest since ``reset``, a line each."""
    with _connect(url) as conn:
        found = conn.execute(_TOP, (limit,)).fetchall()
    lines = ["calls | rows | ms in all | µs a row | statement"]
    for calls, rows, total, per_row, query in found:
        lines.append(f"{calls} | {rows} | {total:.1f} | {per_row:.1f} | {query[:300]}")
    return lines


def write(url: str, path: Path, limit: int = 20) -> list[str]:
    """``top``, written to ``path`` too."""
    lines = top(url, limit)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return lines
