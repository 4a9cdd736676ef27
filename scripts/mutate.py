"""Mutation testing of the core (issue 16): `make mutate`, or
`python scripts/mutate.py [module ...]` for some modules, `--report` to print the table
of the last runs without running anything.

Each module runs mutmut (requirements-dev.lock) in its own folder .mutate/<module>/ (which
links fidelia/, tests/ and pyproject.toml, and holds a generated setup.cfg), with the tests
that cover it, on SQLite only (`-k "not postgresql"`: no PostgreSQL server per mutant).
mutmut runs, for each mutant, only the selected tests that call the mutated function.

The score is killed / all mutants (a timeout counts as killed, a mutant no selected test
reaches counts as surviving). A surviving mutant must be killed by a new test or listed
in docs/testing.md ("Mutation testing (issue 16)") with why it is equivalent: the script
prints the survivors that file does not name, and exits 1 when a module is under 90 %.

A module whose full run takes hours may be run again only for the functions that changed
since its last full run (`scripts/mutate.py <module> --only "fidelia.<m>.x_<f>__mutmut_*"`):
scripts/mutate_carried.json keeps, per module, that earlier run's function hashes (mutmut's,
of the code it ran) and its survivors. A mutant left unchecked whose function still has the
recorded hash is carried over with that run's verdict (survived if listed, else killed) and
counted apart in the table; a changed or new function must be run.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutate"
DOC = ROOT / "docs" / "testing.md"
CARRIED = Path(__file__).resolve().parent / "mutate_carried.json"
TARGET = 90.0
SQLITE_ONLY = ["-k", "not postgresql"]


@dataclass(frozen=True)
class Module:
    files: tuple[str, ...]  # globs of the files to mutate
    tests: tuple[str, ...]  # the tests that cover them


# Smallest first: each runs its selection twice (stats, clean run) before the mutants.
MODULES: dict[str, Module] = {
    "idempotency": Module(
        ("fidelia/idempotency/*.py",),
        ("tests/idempotency", "tests/dialects/rest_v2/test_idempotency.py"),
    ),
    "challenges": Module(
        ("fidelia/challenges/*.py",),
        ("tests/challenges",),
    ),
    "redemptions": Module(
        ("fidelia/redemptions/*.py",),
        ("tests/redemptions",),
    ),
    "pins": Module(
        ("fidelia/pins/*.py",),
        ("tests/pins",),
    ),
    "worker": Module(
        ("fidelia/messaging/worker.py", "fidelia/messaging/outbox.py"),
        ("tests/messaging/test_outbox_worker.py", "tests/messaging/test_worker.py"),
    ),
    "ledger": Module(
        ("fidelia/ledger/*.py",),
        ("tests/ledger",),  # service level; test_concurrency.py's servers take minutes a mutant
    ),
    "orders": Module(
        ("fidelia/orders/*.py",),
        ("tests/orders",),  # the service-level tests; the doors' take a minute per mutant
    ),
}


def folder(name: str) -> Path:
    return WORK / name


def prepare(name: str, module: Module) -> Path:
    where = folder(name)
    where.mkdir(parents=True, exist_ok=True)
    for linked in ("fidelia", "tests", "pyproject.toml"):
        link = where / linked
        if not link.is_symlink():
            link.symlink_to(ROOT / linked)
    lines = ["[mutmut]", "source_paths = fidelia", "only_mutate ="]
    lines += [f"    {glob}" for glob in module.files]
    lines += ["pytest_add_cli_args_test_selection ="]
    lines += [f"    {arg}" for arg in (*module.tests, *SQLITE_ONLY)]
    # mutmut's wall-clock timeout is (time of the tests' calls + constant) * 15: the calls
    # leave out fixture setup, slow on a loaded machine; a timeout would count as a kill.
    lines += ["timeout_constant = 10"]
    (where / "setup.cfg").write_text("\n".join(lines) + "\n")
    return where


def run(name: str, module: Module, children: int, only: list[str]) -> None:
    where = prepare(name, module)
    mutmut = Path(sys.executable).parent / "mutmut"
    print(f"== {name}: mutmut run in {where.relative_to(ROOT)}", flush=True)
    subprocess.run([str(mutmut), "run", "--max-children", str(children), *only], cwd=where)


@dataclass
class Score:
    total: int = 0
    checked: int = 0  # mutants run (an interrupted run leaves some unchecked)
    killed: int = 0
    timeouts: int = 0
    survivors: tuple[str, ...] = ()
    carried: int = 0  # unchecked, the verdict of an earlier full run (mutate_carried.json)
    carried_killed: int = 0

    @property
    def percent(self) -> float:
        done = self.checked + self.carried
        return 100.0 * (self.killed + self.carried_killed) / done if done else 0.0


KILLED = {1, 3, 36, 24, -24, 152, 255}  # failing tests, or a timeout (mutmut's codes)


def carried_over(name: str) -> dict[str, object]:
    """The earlier full run whose verdicts still hold for unchanged functions, if any."""
    if not CARRIED.exists():
        return {}
    runs: dict[str, dict[str, object]] = json.loads(CARRIED.read_text())
    return runs.get(name, {})


def score(name: str) -> Score | None:
    mutants = folder(name) / "mutants"
    metas = sorted(mutants.rglob("*.py.meta"))
    if not metas:
        return None
    earlier = carried_over(name)
    earlier_hashes = cast(dict[str, dict[str, str]], earlier.get("hash_by_function_name", {}))
    earlier_survivors = set(cast(list[str], earlier.get("survivors", [])))
    result = Score()
    survivors: list[str] = []
    for meta in metas:
        data = json.loads(meta.read_text())
        codes: dict[str, int | None] = data["exit_code_by_key"]
        source = meta.relative_to(mutants).as_posix().removesuffix(".meta")
        hashes: dict[str, str] = data.get("hash_by_function_name", {})
        recorded = earlier_hashes.get(source, {})
        for mutant, code in codes.items():
            result.total += 1
            if code is None:
                function = mutant.rpartition("__mutmut_")[0].rpartition(".")[2]
                if function in recorded and hashes.get(function) == recorded[function]:
                    result.carried += 1
                    if mutant in earlier_survivors:
                        survivors.append(mutant)
                    else:
                        result.carried_killed += 1
                continue
            result.checked += 1
            if code in KILLED:
                result.killed += 1
                result.timeouts += code not in (1, 3)
            else:
                survivors.append(mutant)
    result.survivors = tuple(sorted(survivors))
    return result


def documented() -> set[str]:
    text = DOC.read_text() if DOC.exists() else ""
    return set(re.findall(r"`(fidelia\.[\w.]+__mutmut_\d+)`", text))


def report(names: list[str]) -> bool:
    known = documented()
    ok = True
    rows = []
    for name in names:
        result = score(name)
        if result is None:
            rows.append(f"| {name} | not run | | | |")
            ok = False
            continue
        unlisted = [m for m in result.survivors if m not in known]
        checked = f"{result.checked} of {result.total}"
        if result.carried:
            checked += f" (+{result.carried} carried over)"
        killed = f"{result.killed}"
        if result.carried:
            killed += f" (+{result.carried_killed} carried over)"
        rows.append(
            f"| {name} | {checked} | {killed} ({result.timeouts} timeouts) "
            f"| {len(result.survivors)} | {result.percent:.1f} % |"
        )
        complete = result.checked + result.carried == result.total
        ok = ok and result.percent >= TARGET and complete
        for mutant in unlisted:
            print(f"  survived, not in docs/testing.md: {mutant}")
            ok = False
    print("| module | mutants checked | killed | survived | score |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"some of: {', '.join(MODULES)}")
    parser.add_argument("--report", action="store_true", help="print the last scores only")
    parser.add_argument("--children", type=int, default=2, help="mutants run at once")
    parser.add_argument(
        "--only",
        nargs="+",
        default=[],
        metavar="MUTANT",
        help="run only these mutants of one module (names or globs: 'fidelia.a.b.x_f__mutmut_*')",
    )
    args = parser.parse_args()
    names = args.modules or list(MODULES)
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {unknown}; known: {list(MODULES)}")
    if args.only and len(names) != 1:
        parser.error("--only takes the mutants of one module")
    if not args.report:
        for name in names:
            run(name, MODULES[name], args.children, args.only)
    return 0 if report(names) else 1


if __name__ == "__main__":
    sys.exit(main())
