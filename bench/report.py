"""Results: JSON in bench/results/, the table in BENCHMARKS.md, a PNG chart, and the
lines printed at the end of a run (the table, then one ``scenario ...`` line each)."""

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- bench:results:begin (written by bench/run.py; edit around it) -->"
END = "<!-- bench:results:end -->"
ORDER = (
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
)


def fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def scenario_lines(results: dict[str, Any]) -> list[str]:
    """One line per scenario in the exact form scripts read."""
    lines = []
    for s in _scenarios(results):
        lines.append(
            f"scenario {s['name']} rps={s['rps']:.1f} p50_ms={s['p50_ms']:.2f} "
            f"p99_ms={s['p99_ms']:.2f} ratio={s['ratio']:.3f}"
            + (f" floor_ratio={s['floor_ratio']:.3f}" if "floor_ratio" in s else "")
        )
    return lines


def _scenarios(results: dict[str, Any]) -> list[dict[str, Any]]:
    found = {s["name"]: s for s in results["scenarios"]}
    return [found[name] for name in ORDER if name in found]


def table(results: dict[str, Any]) -> str:
    refs = results["references"]
    rows = [
        "| scenario | what | req/s | p50 ms | p99 ms | max ms | CPU ms/req | reference "
        "| ref req/s | ratio | target | floor req/s | × floor | p99 ms at ½ peak "
        "| p99 ms at ½ floor peak (≤ 20) | check |",
        "|---|---|--:|--:|--:|--:|--:|---|--:|--:|---|--:|--:|--:|--:|---|",
    ]
    for s in _scenarios(results):
        ref = refs[s["reference"]]
        half = s.get("half")
        half_text = f"{fmt(half['p99_ms'], 2)} @ {fmt(half['rps'], 0)}/s" if half else "–"
        target = s.get("target")
        if target:
            met = "met" if s["ratio"] >= target else "not met"
            target_text = f"≥ {target} ({met})"
        else:
            target_text = "–"
        rows.append(
            f"| `{s['name']}` | {s['what']} | {fmt(s['rps'])} | {fmt(s['p50_ms'], 2)} "
            f"| {fmt(s['p99_ms'], 2)} | {fmt(s['max_ms'], 1)} | {cpu_text(s)} | {ref['label']} "
            f"| {fmt(ref['rps'])} | {s['ratio']:.3f} | {target_text} "
            f"| {fmt(s.get('floor_rps'))} | {floor_text(s)} | {half_text} "
            f"| {half_floor_text(s)} | {s['check']} |"
        )
    return "\n".join(rows)


def half_floor_text(s: dict[str, Any]) -> str:
    """Fidelia paced at half of the floor's peak: its p99, the rate it reached, whether the
    target (p99 ≤ 20 ms) is met, and the requests that failed or timed out if any."""
    paced = s.get("half_floor")
    if not paced:
        return "–"
    met = "met" if paced["p99_ms"] <= 20 and not paced["errors"] else "not met"
    errors = f", {paced['errors']:,} errors" if paced["errors"] else ""
    return f"{fmt(paced['p99_ms'], 2)} @ {fmt(paced['rps'], 0)}/s ({met}{errors})"


def floor_text(s: dict[str, Any]) -> str:
    """Fidelia's rate over the floor app's (credit: credited end to end per second), with
    the issue 14 target: 1.0 for the credit, 0.8 for the synchronous paths."""
    ratio = s.get("floor_ratio")
    if ratio is None:
        return "–"
    target = 1.0 if s["name"] == "credit" else 0.8
    return f"{ratio:.3f} ({'met' if ratio >= target else 'not met'}: ≥ {target})"


def floors_table(results: dict[str, Any]) -> str:
    rows = [
        "| floor (bench/floor.py) | req/s | p50 ms | p99 ms | CPU ms/req |",
        "|---|--:|--:|--:|--:|",
    ]
    for name, f in results.get("floors", {}).items():
        rows.append(
            f"| `{name}` | {fmt(f['rps'])} | {fmt(f['p50_ms'], 2)} | {fmt(f['p99_ms'], 2)} "
            f"| {fmt(f.get('web_cpu_ms'), 2)} |"
        )
    return "\n".join(rows)


def cpu_text(s: dict[str, Any]) -> str:
    """Web processes' CPU per request, plus the outbox worker's where it has work."""
    web, worker = s.get("web_cpu_ms"), s.get("worker_cpu_ms")
    if web is None:
        return "–"
    return f"{web:.2f} + {worker:.2f}" if worker else f"{web:.2f}"


def references_table(results: dict[str, Any]) -> str:
    rows = ["| reference | req/s | p50 ms | p99 ms | max ms |", "|---|--:|--:|--:|--:|"]
    for ref in results["references"].values():
        rows.append(
            f"| {ref['label']} | {fmt(ref['rps'])} | {fmt(ref['p50_ms'], 2)} "
            f"| {fmt(ref['p99_ms'], 2)} | {fmt(ref['max_ms'], 1)} |"
        )
    return "\n".join(rows)


def scaling_table(results: dict[str, Any]) -> str:
    rows = [
        "| ledger entries before the run | merchants | customers | credit req/s | p50 ms "
        "| p99 ms | web CPU ms/req | CPU ms per credit: web + worker + PostgreSQL "
        "| load average | req/s vs first |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    points = results.get("scaling", [])
    first = points[0]["rps"] if points else 0
    for p in points:
        rel = p["rps"] / first if first else 0
        cpu = p.get("cpu_ms_per_credit") or {}
        per_credit = f"{cpu['web']:.2f} + {cpu['worker']:.2f} + {cpu['db']:.2f}" if cpu else "–"
        rows.append(
            f"| {p['ledger_entries']:,} | {p['tenants']:,} | {p['customers']:,} "
            f"| {fmt(p['rps'])} | {fmt(p['p50_ms'], 2)} | {fmt(p['p99_ms'], 2)} "
            f"| {fmt(p.get('web_cpu_ms'), 2)} | {per_credit} "
            f"| {fmt(p.get('load_average'), 1)} | {rel:.2f} |"
        )
    return "\n".join(rows)


def summary(results: dict[str, Any]) -> str:
    s = results["settings"]
    parts = [
        f"Run {results['started_at']} on {s['cpus']} CPUs, {s['elapsed_s']:.0f} s in all "
        f"({'quick' if results['quick'] else 'full'}). {s['connections']} connections "
        f"for wrk and pgbench alike, {s['seconds']} s a measurement; Fidelia on PostgreSQL "
        f"{s['postgres']}: `{s['serve']}` + `fidelia worker`; on SQLite: `fidelia serve`. "
        f"Rate limit raised for the load generator's single address: "
        f"`FIDELIA_RATE_LIMIT_PIN_DOOR={s['rate_limit']}` (production default `30/minute`).",
        "",
        table(results),
        "",
        references_table(results),
        "",
        floors_table(results),
        "",
        "Credit path as the database grows:",
        "",
        scaling_table(results),
    ]
    if results.get("bling"):
        from bench import bling

        parts += ["", "Bling connector (`bench/bling.py`):", "", bling.table(results)]
    if results.get("notes"):
        parts += ["", *[f"- {note}" for note in results["notes"]]]
    return "\n".join(parts)


def write_json(results: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = results["started_at"].replace(":", "").replace("-", "")
    path = out_dir / f"{'quick' if results['quick'] else 'bench'}-{stamp}.json"
    text = json.dumps(results, indent=2, ensure_ascii=False)
    path.write_text(text + "\n")
    (out_dir / ("quick-latest.json" if results["quick"] else "latest.json")).write_text(text + "\n")
    return path


def update_markdown(results: dict[str, Any], path: Path) -> None:
    """Replace the generated block of BENCHMARKS.md, keeping the prose around it."""
    block = f"{BEGIN}\n{summary(results)}\n\n![throughput and p99](bench/results/bench.png)\n{END}"
    if path.exists():
        text = path.read_text()
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            tail = rest.split(END, 1)[1]
            path.write_text(head + block + tail)
            return
        path.write_text(text.rstrip() + "\n\n" + block + "\n")
        return
    path.write_text(f"# Benchmarks\n\nReproduce with `make bench`.\n\n{block}\n")


def chart(results: dict[str, Any], path: Path) -> None:
    """Throughput against the reference, and p99 at peak and at half of it, per scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = _scenarios(results)
    names = [s["name"] for s in scenarios]
    refs = [results["references"][s["reference"]]["rps"] for s in scenarios]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    x = range(len(names))
    ax = axes[0]
    ax.bar([i - 0.2 for i in x], [s["rps"] for s in scenarios], 0.4, label="Fidelia")
    ax.bar([i + 0.2 for i in x], refs, 0.4, label="reference", color="#bbbbbb")
    ax.set_yscale("log")
    ax.set_xticks(list(x), names)
    ax.set_ylabel("requests/s (log)")
    ax.set_title("Throughput vs reference")
    ax.legend()
    ax = axes[1]
    ax.bar([i - 0.2 for i in x], [s["p99_ms"] for s in scenarios], 0.4, label="at peak")
    halves = [s["half"]["p99_ms"] if s.get("half") else 0 for s in scenarios]
    ax.bar([i + 0.2 for i in x], halves, 0.4, label="at ½ peak", color="#4c9a2a")
    ax.axhline(20, color="red", linestyle="--", linewidth=1, label="target at ½ peak: 20 ms")
    ax.set_xticks(list(x), names)
    ax.set_ylabel("p99 latency (ms)")
    ax.set_title("p99 latency")
    ax.legend()
    ax = axes[2]
    points = results.get("scaling", [])
    labels = [f"{p['ledger_entries'] / 1000:,.0f}k / {p['tenants']}" for p in points]
    ax.plot(labels, [p["rps"] for p in points], marker="o", label="credit req/s")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("ledger entries / merchants")
    ax.set_ylabel("requests/s")
    ax.set_title("Credit path as the database grows")
    ax2 = ax.twinx()
    ax2.plot(
        labels,
        [p.get("web_cpu_ms") or 0 for p in points],
        marker="s",
        color="#c44e52",
        label="web CPU ms/request",
    )
    ax2.set_ylim(bottom=0)
    ax2.set_ylabel("web CPU ms per request (red)")
    fig.suptitle(
        f"Fidelia benchmarks ({results['started_at']}, {results['settings']['cpus']} CPUs)"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
