"""A 1M-row export runs in constant memory: ``fidelia export ledger`` as a real subprocess
on a SQLite database seeded with 1,000,000 ledger entries, its peak RSS (the kernel's
VmHWM) compared with the same export of 20,000 rows."""

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fidelia.kit.db import Database
from fidelia.models import Customer, Program
from fidelia.tenants.service import create_tenant

ROWS = 1_000_000
SMALL = 20_000


def seed(path: Path, rows: int) -> None:
    db = Database(f"sqlite:///{path}", pool_size=1)
    try:
        with db.session() as session:
            big = create_tenant(session, slug="big", name="Big", currency="BRL")
            small = create_tenant(session, slug="small", name="Small", currency="BRL")
            ids = {}
            for tenant in (big, small):
                program = session.get_one(Program, tenant.program_id)
                customer = Customer(program_id=program.id, tenant_id=tenant.id, name="Ana")
                session.add(customer)
                session.flush()
                ids[tenant.slug] = (tenant.id, program.id, customer.id)
    finally:
        db.dispose()
    at = datetime(2025, 1, 1, tzinfo=UTC).replace(tzinfo=None).isoformat(" ")
    connection = sqlite3.connect(path)
    with connection:

        def entries():
            for slug, count in (("big", rows), ("small", SMALL)):
                tenant_id, program_id, customer_id = ids[slug]
                for n in range(count):
                    yield (
                        program_id,
                        tenant_id,
                        customer_id,
                        "cashback" if n % 3 == 0 else "points",
                        "earn",
                        100 + n % 50,
                        n,
                        "order",
                        f"{slug}-{n}",
                        at,
                    )

        connection.executemany(
            "INSERT INTO ledger_entries (program_id, tenant_id, customer_id, account, kind, "
            "amount, balance_after, source_type, source_id, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            entries(),
        )
    connection.close()


def export(url: str, tenant: str, target: Path) -> int:
    """Run the CLI; returns its peak resident memory in KiB.

    Read from the child's own ``VmHWM`` (the high-water mark of its address space, which
    starts anew at exec) while it runs. Not from ``wait4``'s ``ru_maxrss``: Linux carries
    that figure across exec, so it also counts the forked copy of this pytest process,
    which is large late in a full run and made this test fail for the wrong reason."""
    env = {**os.environ, "FIDELIA_DATABASE_URL": url}
    cli = shutil.which("fidelia", path=str(Path(sys.executable).parent)) or ""
    command = [cli] if cli else [sys.executable, "-m", "fidelia.cli"]
    process = subprocess.Popen(
        [*command, "export", "ledger", "--tenant", tenant, "--decimal-comma", "-o", str(target)],
        env=env,
        stderr=subprocess.PIPE,
    )
    status = Path(f"/proc/{process.pid}/status")
    peak = 0
    while process.poll() is None:
        try:
            text = status.read_text()
        except OSError:  # exited between the poll and the read
            break
        found = re.search(r"^VmHWM:\s+(\d+) kB", text, re.M)
        if found:
            peak = max(peak, int(found.group(1)))
        time.sleep(0.02)
    errors = process.stderr.read() if process.stderr else b""
    assert process.wait() == 0, errors
    return peak


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_a_million_row_export_runs_in_constant_memory(tmp_path, sqlite_template):
    path = tmp_path / "big.db"
    shutil.copy(sqlite_template, path)
    seed(path, ROWS)
    url = f"sqlite:///{path}"
    small_peak = export(url, "small", tmp_path / "small.csv")
    big_peak = export(url, "big", tmp_path / "big.csv")
    with (tmp_path / "big.csv").open("rb") as out:
        assert out.read(3) == "\ufeff".encode()
        lines = sum(1 for _ in out)
    assert lines == ROWS + 1  # the header, then every row
    sample = (tmp_path / "small.csv").read_text(encoding="utf-8-sig").splitlines()[:2]
    assert sample[0].startswith("id;at;customer_id;account;kind;amount")
    assert ";cashback;earn;1,00;" in sample[1]  # 100 minor units, decimal comma
    print(
        f"\nexport peak RSS: {SMALL:,} rows {small_peak // 1024} MiB, {ROWS:,} rows "
        f"{big_peak // 1024} MiB"
    )
    assert big_peak < small_peak + 24 * 1024, (small_peak, big_peak)  # not growing with rows
    assert big_peak < 250 * 1024
