"""`bench/hotpath.py --floor` as a smoke test: Fidelia and the floor app (bench/floor.py)
answer the same requests in one process without an error, and the line gives the ratio
of their CPU per request. It checks that the comparison runs, never speed."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(
    r"^hotpath (?P<name>[a-z-]+) postgresql: [\d.]+ ms CPU/request, [\d.]+ ms wall, 0 errors "
    r"\(PostgreSQL [\d.]+ ms CPU/request\); "
    r"floor [\d.]+ ms CPU/request \(0 errors, PostgreSQL [\d.]+\), [\d.]+ × the floor's$"
)


def hotpath(*args: str) -> list[str]:
    """``bench/hotpath.py`` on PostgreSQL with the floor, 30 requests a path: its lines."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "hotpath.py"), *args]
        + ["--db", "postgresql", "--floor", "-n", "30"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    return [line for line in run.stdout.splitlines() if line.startswith("hotpath ")]


def test_hotpath_measures_fidelia_and_the_floor_on_the_same_requests() -> None:
    lines = hotpath("pin", "pos-order", "healthz", "--listen")
    assert [m["name"] for m in map(LINE.match, lines) if m] == ["pin", "pos-order"], lines
    assert lines[-1].startswith("hotpath healthz postgresql:") and "floor" not in lines[-1]


def test_hotpath_direct_hands_the_requests_to_the_apps_without_the_client() -> None:
    """``--direct``: the same requests handed to each ASGI app as a server would; every one
    answered without an error (a request the app could not read would count as one)."""
    lines = hotpath("lookup", "retail-transaction", "--direct")
    names = [m["name"] for m in map(LINE.match, lines) if m]
    assert names == ["lookup", "retail-transaction"], lines


def test_hotpath_in_flight_sends_requests_at_once_without_an_error() -> None:
    """``--in-flight 4``: four clients at a time, a write path (its database threads) and an
    event-loop path, every request answered without an error, Fidelia's and the floor's."""
    lines = hotpath("pos-redeem", "lookup", "--direct", "--in-flight", "4")
    names = [m["name"] for m in map(LINE.match, lines) if m]
    assert names == ["pos-redeem", "lookup"], lines


def test_hops_times_both_ways_of_a_thread_hop() -> None:
    for way in ("anyio", "pool"):
        run = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "hops.py"), way, "4"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr[-4000:]
        assert re.fullmatch(rf"hops {way} x4: [\d.]+ µs CPU a hop\n", run.stdout), run.stdout


def test_scaffold_measures_every_way_against_psycopg_alone() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "scaffold.py"), "-n", "80", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    medians = re.findall(r"^scaffold ([a-z-]+) x8: median [\d.]+ ms CPU a call$", run.stdout, re.M)
    assert medians == [
        "transaction",
        "psycopg-transaction",
        "statement",
        "engine-statement",
        "psycopg-statement",
    ]


def test_sections_times_the_chosen_functions_in_place() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "sections.py"), "pos-order"]
        + ["--db", "postgresql", "--direct", "-n", "30"]
        + ["--section", "fidelia.edge:Edge.__call__", "--section", "fidelia.kit.driver:execute"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    found = dict(
        re.findall(r"^section (\S+): [\d.]+ µs a request \(([\d.]+) calls\)$", run.stdout, re.M)
    )
    assert set(found) == {"Edge.__call__", "execute"}, run.stdout[-2000:]
    assert found["Edge.__call__"] == "1.00" and float(found["execute"]) >= 1  # a request each
