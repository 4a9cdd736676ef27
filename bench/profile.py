"""Profile running processes with py-spy (`bench/run.py --profile`, `bench/hotpath.py
--profile py-spy`).

py-spy samples from outside (no code change, no restart), only while a thread holds the
GIL, so the samples are where the CPU goes. The summary is the share of samples in which
each function is on the stack (inclusive) and at its top (own time), over every process
given; the collapsed stacks stay in ``<base>-<pid>.txt`` for a flame graph.
"""

import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PY_SPY = Path(sys.executable).parent / "py-spy"


@dataclass
class Profiler:
    procs: list[subprocess.Popen[bytes]]
    outputs: list[Path]
    base: Path


def start(pids: list[int], base: Path, seconds: float) -> Profiler | None:
    spy = str(PY_SPY) if PY_SPY.exists() else shutil.which("py-spy")
    if spy is None:
        print("py-spy is not installed (make bench installs requirements-bench.lock)")
        return None
    base.parent.mkdir(parents=True, exist_ok=True)
    procs, outputs = [], []
    for pid in pids:
        out = base.with_name(f"{base.name}-{pid}.txt")
        procs.append(
            subprocess.Popen(
                [spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))]
                + [
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                    "--gil",
                    "--nonblocking",
                    "--output",
                    str(out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        outputs.append(out)
    return Profiler(procs, outputs, base)


def finish(profiler: Profiler, top: int = 40) -> list[str]:
    for proc in profiler.procs:
        proc.wait(60)
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for out in profiler.outputs:
        if not out.exists():
            continue
        for line in out.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [_short(f) for f in stack.split(";") if f]
            if not frames or _idle(frames[-1]):
                continue
            total += count
            for frame in set(frames):
                inclusive[frame] += count
            own[frames[-1]] += count
    if not total:
        return ["profile: no samples"]
    lines = [f"profile: {total} busy samples, written to {profiler.base}-*.txt"]
    lines.append("inclusive (share of busy samples a function is on the stack):")
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    lines.append("own time (share at the top of the stack):")
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top // 2)]
    summary = profiler.base.with_name(profiler.base.name + "-summary.txt")
    summary.write_text("\n".join(lines) + "\n")
    return lines


def _short(frame: str) -> str:
    """'handle (fidelia/messaging/bot.py:75)' -> 'handle (fidelia/messaging/bot.py)'."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


def _idle(frame: str) -> bool:
    return any(
        word in frame
        for word in ("select (selectors.py", "wait (threading.py", "_worker (concurrent/")
    )


@contextmanager
def this_process(kind: str, out: Path) -> Iterator[None]:
    """Profile this process while the block runs (`bench/hotpath.py`, `bench/panelhot.py`):
    ``kind`` "" (none), "py-spy" (every thread) or "pyinstrument" (the event loop's thread),
    the result beside ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = start([os.getpid()], out, 3600) if kind == "py-spy" else None
    instrument = None
    if kind == "pyinstrument":
        from pyinstrument import Profiler as Instrument

        instrument = Instrument(interval=0.0005, async_mode="disabled")
        instrument.start()
    try:
        yield
    finally:
        if spy is not None:
            for proc in spy.procs:
                proc.send_signal(signal.SIGINT)  # py-spy writes what it has and exits
            print("\n".join(finish(spy)))
        if instrument is not None:
            instrument.stop()
            text = instrument.output_text(unicode=True, color=False, show_all=False)
            out.with_suffix(".pyinstrument.txt").write_text(text)
            print(f"  pyinstrument profile: {out.with_suffix('.pyinstrument.txt')}")
