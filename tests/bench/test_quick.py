"""`bench/run.py --quick` as a smoke test of `make bench`: every scenario runs against
real processes and answers correctly (the credit path really credits, PINs are really
generated, redemptions really debit, replies really leave through the outbox). It checks
correctness, never speed."""

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(
    r"^scenario (?P<name>[a-z0-9-]+) rps=[\d.]+ p50_ms=[\d.]+ p99_ms=[\d.]+ ratio=[\d.]+"
    r"( floor_ratio=[\d.]+)?$"
)


def test_quick_benchmark_answers_every_scenario(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=420,  # the Bling scenarios (bench/bling.py) added about a minute
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-6000:]

    lines = [line for line in run.stdout.splitlines() if line.startswith("scenario ")]
    assert [LINE.match(line)["name"] for line in lines if LINE.match(line)] == [
        "credit",
        "pin",
        "lookup",
        "redeem",
        "pos-redeem",
        "pos-order",
        "retail-transaction",
        "v2-sale",
        "panel-search",
        "panel-customer",
        "dashboard",
        "sqlite-credit",
    ], lines
    assert "FIDELIA_RATE_LIMIT_PIN_DOOR=" in run.stdout  # the raised limit is said out loud

    results = json.loads((tmp_path / "quick-latest.json").read_text())
    for scenario in results["scenarios"]:
        assert scenario["check"] == "ok", scenario
        assert scenario["requests"] > 0 and scenario["errors"] == 0, scenario
    paced = [s["name"] for s in results["scenarios"] if s.get("half_floor")]
    assert paced == ["pin", "lookup", "redeem", "pos-redeem", "pos-order",
                     "retail-transaction", "v2-sale"]  # fmt: skip
    for scenario in results["scenarios"]:  # p99 at half of the floor's peak, measured
        assert scenario.get("half_floor", {"requests": 1})["requests"] > 0, scenario
    for point in results["scaling"]:
        assert point["check"] == "ok", point
    assert len(results["scaling"]) >= 2
    assert set(results["references"]) == {"pgbench-N", "pgbench-S", "sqlite-loop"}
    assert results["outbox_delivered"] > 0  # the worker delivered the bot's replies
    # The Bling connector (bench/bling.py): the import and the event backlog, checked.
    bling = results["bling"]
    assert bling["import"]["check"] == "ok" and bling["import"]["orders_per_s"] > 0, bling
    assert bling["events"]["check"] == "ok" and bling["events"]["events_per_s"] > 0, bling
    assert re.search(r"^bling events_per_s=[\d.]+ .*check=ok$", run.stdout, re.M)
