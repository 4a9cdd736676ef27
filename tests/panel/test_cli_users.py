"""`fidelia user create/list` and the demo's owner login, as operators run them."""

import re
from pathlib import Path

import pytest

from tests.panel.support import sign_in
from tests.test_cli import Run, door, one_json, runner


@pytest.fixture
def fidelia(tmp_path: Path) -> Run:
    return runner(f"sqlite:///{tmp_path / 'cli.db'}", tmp_path)


def test_user_create_and_list(fidelia, tmp_path):
    fidelia("tenant", "create", "--slug", "cafe", "--name", "Café")
    owner = one_json(
        fidelia(
            "user",
            "create",
            "--tenant",
            "cafe",
            "--email",
            "Ana@Cafe.test",
            "--role",
            "owner",
            "--password",
            "ana's password",
            "--json",
        )
    )
    assert owner["email"] == "ana@cafe.test" and "password" not in owner
    staff = one_json(
        fidelia("user", "create", "--email", "ops@p.test", "--role", "operator", "--json")
    )
    assert len(staff["password"]) >= 12  # generated and shown once
    refused = fidelia("user", "create", "--email", "x@cafe.test", "--role", "owner", ok=False)
    assert refused.returncode == 1 and "belongs to a merchant" in refused.stderr
    taken = fidelia(
        "user",
        "create",
        "--tenant",
        "cafe",
        "--email",
        "ana@cafe.test",
        "--role",
        "cashier",
        ok=False,
    )
    assert taken.returncode == 1 and "already exists" in taken.stderr
    listed = fidelia("user", "list").stdout
    assert re.search(r"ana@cafe.test +owner +cafe", listed)
    assert re.search(r"ops@p.test +operator +-", listed)
    with door(f"sqlite:///{tmp_path / 'cli.db'}") as client:
        sign_in(client, "ana@cafe.test", "ana's password")
        assert client.get("/panel/program").status_code == 200
        sign_in(client, "ops@p.test", staff["password"])


def test_demo_prints_a_stable_owner_login_that_works(fidelia, tmp_path):
    first = fidelia("demo").stdout
    found = re.search(r"owner login: (\S+) / (\S+)", first)
    assert found and found.group(1) == "owner@cafe-demo.local"
    assert found.group(2) in fidelia("demo").stdout  # derived from the secret: stable
    with door(f"sqlite:///{tmp_path / 'cli.db'}") as client:
        sign_in(client, found.group(1), found.group(2))
        assert "Café Demo" in client.get("/panel/onboarding").text
