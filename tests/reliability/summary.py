"""What the reliability run did, printed at its end (``conftest.pytest_terminal_summary``):
requests sent, faults injected, inputs tried, a line per scenario, and last
``invariant violations: N``. Tests add to it as they go, and record every violation they
find *before* asserting, so the count is right even when a test fails.

``FIDELIA_RELIABILITY=long`` (``make reliability``) runs every scenario longer and harder;
the default short form is what ``make test`` runs."""

import os
import threading
from dataclasses import dataclass, field

LONG = os.environ.get("FIDELIA_RELIABILITY", "short").strip().lower() == "long"
INTENSITY = "long" if LONG else "short"


def pick(short: int, long: int) -> int:
    return long if LONG else short


def pickf(short: float, long: float) -> float:
    return long if LONG else short


@dataclass
class Summary:
    requests: int = 0
    faults: int = 0
    inputs: int = 0
    violations: int = 0
    lines: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def sent(self, n: int = 1) -> None:
        with self.lock:
            self.requests += n

    def fault(self, n: int = 1) -> None:
        with self.lock:
            self.faults += n

    def tried(self, n: int = 1) -> None:
        with self.lock:
            self.inputs += n

    def note(self, line: str) -> None:
        with self.lock:
            self.lines.append(line)

    def violated(self, where: str, problems: list[str]) -> list[str]:
        """Count ``problems`` (keeping a few for the report) and return them, for an assert."""
        with self.lock:
            self.violations += len(problems)
            self.examples.extend(f"{where}: {p}" for p in problems[:5])
        return problems

    def render(self) -> list[str]:
        out = [f"reliability ({INTENSITY} form)"]
        out.extend(f"  {line}" for line in self.lines)
        out.extend(f"  VIOLATION {example}" for example in self.examples[:20])
        out.append(f"requests sent: {self.requests}")
        out.append(f"faults injected: {self.faults}")
        out.append(f"inputs tried: {self.inputs}")
        out.append(f"invariant violations: {self.violations}")
        return out

    @property
    def used(self) -> bool:
        return bool(self.lines or self.requests or self.inputs or self.violations)


SUMMARY = Summary()

# Every database a reliability test used, kept to the end: the suite ends by running
# ``fidelia check`` on each of them (test_zz_fidelia_check.py).
DATABASES: list[str] = []
