"""The references each scenario is compared with: what the database itself can do.

- PostgreSQL: ``pgbench`` on the same server at the same client count, ``-N`` (a write
  transaction: update, select, insert) and ``-S`` (a primary-key read).
- SQLite: a plain Python loop on ``sqlite3`` doing the credit path's own writes (dedupe
  row, PIN update, balance upsert, ledger entry, outbox row) in one ``BEGIN IMMEDIATE``
  transaction each, with the pragmas Fidelia uses.
"""

import glob
import json
import re
import sqlite3
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.load import LoadResult
from bench.seed import NAMESPACE, POINTS_PER_PIN, PoolPin
from tests.support.postgres import PostgresServer, pg_bin


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _result(latencies_ms: list[float], seconds: float) -> LoadResult:
    latencies_ms.sort()
    n = len(latencies_ms)
    return LoadResult(
        requests=n,
        seconds=seconds,
        errors=0,
        p50_ms=_percentile(latencies_ms, 0.50),
        p90_ms=_percentile(latencies_ms, 0.90),
        p99_ms=_percentile(latencies_ms, 0.99),
        max_ms=latencies_ms[-1] if n else 0.0,
        mean_ms=sum(latencies_ms) / n if n else 0.0,
        sent=n,
        exhausted=False,
    )


def pgbench_init(pg: PostgresServer, scale: int) -> None:
    pg.psql("CREATE DATABASE pgbench")
    subprocess.run(
        [pg_bin("pgbench"), "-i", "-q", "-s", str(scale), *_conn(pg), "pgbench"],
        check=True,
        capture_output=True,
    )


def _conn(pg: PostgresServer) -> list[str]:
    return ["-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres"]


def pgbench(pg: PostgresServer, mode: str, clients: int, seconds: int, threads: int) -> LoadResult:
    """``mode`` is ``-N`` or ``-S``; latencies come from pgbench's per-transaction log."""
    with tempfile.TemporaryDirectory(prefix="fidelia-pgbench-") as tmp:
        prefix = str(Path(tmp) / "log")
        out = subprocess.run(
            [pg_bin("pgbench"), mode, "-c", str(clients), "-j", str(threads), "-T", str(seconds)]
            + ["-l", f"--log-prefix={prefix}", *_conn(pg), "pgbench"],
            check=True,
            capture_output=True,
            text=True,
            cwd=tmp,
        )
        latencies: list[float] = []
        failed = 0
        for name in glob.glob(prefix + "*"):
            with open(name) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 3 and parts[2].isdigit():
                        latencies.append(int(parts[2]) / 1000)
                    else:
                        failed += 1
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out.stdout)
    if match is None:
        raise RuntimeError(f"pgbench gave no tps:\n{out.stdout}\n{out.stderr}")
    tps = float(match.group(1))
    result = _result(latencies, len(latencies) / tps if tps else float(seconds))
    return LoadResult(**{**result.__dict__, "errors": failed})


def sqlite_loop(path: Path, pool: list[PoolPin], seconds: float) -> LoadResult:
    """The credit path's writes as plain ``sqlite3`` calls, one transaction per PIN, until
    ``seconds`` pass or the pool runs out."""
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in (
        "journal_mode=WAL",
        "busy_timeout=30000",
        "foreign_keys=ON",
        "synchronous=NORMAL",
    ):
        conn.execute(f"PRAGMA {pragma}")
    latencies: list[float] = []
    started = time.perf_counter()
    deadline = started + seconds
    for k, pin in enumerate(pool):
        t0 = time.perf_counter()
        if t0 >= deadline:
            break
        at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        c = pin.customer
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO inbound_messages (message_id, contact_id, received_at) VALUES (?, ?, ?)",
            (f"wamid.ref.{k}", None, at),
        )
        row = conn.execute(
            "UPDATE pins SET status = 'used', used_at = ?, customer_id = ? WHERE namespace = ? "
            "AND code = ? AND status = 'open' AND expires_at > ? RETURNING id",
            (at, c.id, NAMESPACE, pin.code, at),
        ).fetchone()
        assert row is not None, "reference: PIN not open"
        after = conn.execute(
            "INSERT INTO balances (program_id, customer_id, account, amount) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (program_id, customer_id, account) DO UPDATE "
            "SET amount = balances.amount + excluded.amount RETURNING amount",
            (c.program_id, c.id, "points", POINTS_PER_PIN),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO ledger_entries (program_id, tenant_id, customer_id, account, kind, "
            "amount, balance_after, source_type, source_id, remaining, expires_at, created_at) "
            "VALUES (?, ?, ?, 'points', 'earn', ?, ?, 'pin', ?, ?, NULL, ?)",
            (c.program_id, c.tenant_id, c.id, POINTS_PER_PIN, after, str(row[0]))
            + (POINTS_PER_PIN, at),
        )
        payload: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "type": "text",
            "text": {"body": f"Sumaste {POINTS_PER_PIN} puntos. Tu saldo: {after} puntos."},
            "to": c.number.lstrip("+"),
        }
        conn.execute(
            "INSERT INTO outbox (tenant_id, channel, payload, status, attempts, next_attempt_at, "
            "created_at) VALUES (?, 'whatsapp', ?, 'pending', 0, ?, ?)",
            (c.tenant_id, json.dumps(payload), at, at),
        )
        conn.execute("COMMIT")
        latencies.append((time.perf_counter() - t0) * 1000)
    elapsed = time.perf_counter() - started
    conn.close()
    return _result(latencies, elapsed)
