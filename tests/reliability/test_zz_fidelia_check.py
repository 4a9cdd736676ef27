"""The reliability run ends with ``fidelia check``, as an operator runs it, on every
database the run used: after the crashes, the races, the fuzzing and the isolation probes,
each balance equals the sum of its entries, the chains and lots add up, nothing is
half-applied and the outbox is sound. (Named to run last.)"""

import pytest

from tests.reliability.harness import fidelia_check
from tests.reliability.summary import DATABASES, SUMMARY


def test_fidelia_check_on_every_database_of_the_run() -> None:
    if not DATABASES:
        pytest.skip("no reliability scenario ran before this test")
    problems = []
    for url in DATABASES:
        result = fidelia_check(url)
        if result.returncode != 0 or not result.stdout.startswith("ok: "):
            problems.append(f"{url}: exit {result.returncode}\n{result.stdout}{result.stderr}")
    SUMMARY.note(
        f"fidelia check: {len(DATABASES)} databases, "
        f"{len(DATABASES) - len(problems)} ok, {len(problems)} with violations"
    )
    SUMMARY.violated("fidelia check", problems)
    assert not problems, "\n".join(problems)
