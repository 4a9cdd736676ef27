"""The ``fidelia`` command as operators run it: a real subprocess (the console script next
to this interpreter) on a temporary SQLite file, and once on PostgreSQL. What the commands
did is checked through the command itself and through the PIN door."""

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from fidelia.app import create_app
from fidelia.kit.settings import Settings
from tests.support.postgres import free_port

FIDELIA = Path(sys.executable).parent / "fidelia"
GENERAR = "/api/v1/integraciones/pin/generar"

Run = Callable[..., subprocess.CompletedProcess[str]]


def environment(database_url: str) -> dict[str, str]:
    """This process's environment without any FIDELIA_ setting but the database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIDELIA_")}
    env["FIDELIA_DATABASE_URL"] = database_url
    return env


def runner(database_url: str, cwd: Path) -> Run:
    """``run("tenant", "show", "cafe")``: exit 0 expected unless ``ok=False``."""

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(FIDELIA), *args],
            env=environment(database_url),
            cwd=cwd,  # no stray .env file
            capture_output=True,
            text=True,
            timeout=60,
        )
        if ok:
            assert result.returncode == 0, f"fidelia {' '.join(args)}:\n{result.stderr}"
        return result

    return run


def one_json(result: subprocess.CompletedProcess[str]) -> dict:
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    data = json.loads(lines[0])
    assert isinstance(data, dict)
    return data


@contextmanager
def door(database_url: str) -> Iterator[TestClient]:
    """The app in process on the same database, to see what the commands did."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        tenant_cache_seconds=0,
        rate_limits_enabled=False,
    )
    app = create_app(settings, run_worker=False)
    with TestClient(app) as client:
        yield client


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def fidelia(sqlite_url: str, tmp_path: Path) -> Run:
    return runner(sqlite_url, tmp_path)


def create_tenant(fidelia: Run, slug: str = "cafe", *extra: str) -> dict:
    return one_json(
        fidelia("tenant", "create", "--slug", slug, "--name", "Café Uno", *extra, "--json")
    )


def show(fidelia: Run, slug: str = "cafe") -> dict:
    return one_json(fidelia("tenant", "show", slug, "--json"))


def test_migrate_and_tenant_create(fidelia, sqlite_url):
    first = fidelia("migrate")
    assert "up to date" in first.stdout
    fidelia("migrate")  # again: nothing to do

    created = create_tenant(
        fidelia,
        "cafe",
        "--currency",
        "CRC",
        "--timezone",
        "America/Costa_Rica",
        "--min-purchase",
        "1500",
    )
    assert created["slug"] == "cafe"
    assert isinstance(created["id"], int)
    assert created["api_key"].startswith("fk_live")
    shown = show(fidelia)
    assert shown["currency"] == "CRC"
    assert shown["timezone"] == "America/Costa_Rica"
    assert Decimal(shown["min_purchase"]) == Decimal("1500")

    defaults = create_tenant(fidelia, "otro")
    assert show(fidelia, "otro")["currency"] == "USD"
    assert show(fidelia, "otro")["timezone"] == "UTC"

    with door(sqlite_url) as client:
        response = client.post(GENERAR, headers={"X-API-Key": created["api_key"]})
        assert response.status_code == 200
        assert response.json()["id_comercio"] == created["id"]
        assert client.post(GENERAR, headers={"X-API-Key": defaults["api_key"]}).status_code == 200

    duplicate = fidelia("tenant", "create", "--slug", "cafe", "--name", "Again", ok=False)
    assert duplicate.returncode != 0
    assert "already exists" in duplicate.stderr


def test_apikey_create_and_revoke(fidelia, sqlite_url):
    first = create_tenant(fidelia)["api_key"]
    issued = one_json(fidelia("apikey", "create", "--tenant", "cafe", "--json"))
    assert issued["api_key"].startswith("fk_live") and issued["token"]
    second = issued["api_key"]
    # Per door, which value goes in which field, in each guide's words.
    assert issued["doors"] == {
        "rest_v2": {"api_key": issued["token"], "api_secret": second},
        "pos": {"basic_user": issued["token"], "basic_password": second},
        "retail": {"x-api-key": second},
        "pin": {"X-API-Key": second},
    }

    with door(sqlite_url) as client:
        assert client.post(GENERAR, headers={"X-API-Key": second}).status_code == 200
        assert "revoked" in fidelia("apikey", "revoke", second).stdout
        refused = client.post(GENERAR, headers={"X-API-Key": second})
        assert refused.status_code == 401
        assert refused.json()["codigo"] == "UNAUTHORIZED"
        assert client.post(GENERAR, headers={"X-API-Key": first}).status_code == 200

    again = fidelia("apikey", "revoke", second, ok=False)
    assert again.returncode != 0 and again.stderr.startswith("error:")
    unknown = fidelia("apikey", "create", "--tenant", "nadie", "--json", ok=False)
    assert unknown.returncode != 0 and "nadie" in unknown.stderr


def test_reward_create(fidelia, sqlite_url):
    create_tenant(fidelia)
    reward = one_json(
        fidelia(
            "reward",
            "create",
            "--tenant",
            "cafe",
            "--title",
            "Café gratis",
            "--points",
            "10",
            "--description",
            "Un americano",
            "--json",
        )
    )
    assert isinstance(reward["id"], int)
    with door(sqlite_url) as client:
        promociones = client.get("/api/v1/redimir/comercio/cafe").json()["promociones"]
    assert promociones == [
        {
            "id": reward["id"],
            "titulo": "Café gratis",
            "descripcion": "Un americano",
            "puntos_requeridos": 10,
        }
    ]


GOOD_SETTINGS = [
    ("currency", "eur", "EUR"),
    ("timezone", "America/Sao_Paulo", "America/Sao_Paulo"),
    ("locale", "pt_BR", "pt_BR"),
    ("min_purchase", "12.50", Decimal("12.50")),
    ("pin_lifetime_minutes", "15", 15),
    ("points_per_pin", "3", 3),
    ("verification_window_minutes", "45", 45),
]

BAD_SETTINGS = [
    ("currency", "ZZZ"),
    ("currency", "dollars"),
    ("timezone", "Mars/Olympus_Mons"),
    ("locale", "xx_YY"),
    ("min_purchase", "abc"),
    ("min_purchase", "-5"),
    ("min_purchase", "1.234"),
    ("pin_lifetime_minutes", "0"),
    ("pin_lifetime_minutes", "abc"),
    ("pin_lifetime_minutes", "100000"),
    ("points_per_pin", "1.5"),
    ("verification_window_minutes", "-1"),
    ("colour", "blue"),
]


def test_tenant_set_each_setting(fidelia):
    create_tenant(fidelia)
    for key, value, expected in GOOD_SETTINGS:
        result = fidelia("tenant", "set", "cafe", key, value)
        assert result.stdout.startswith(f"cafe: {key} = "), result.stdout
        shown = show(fidelia)[key]
        assert (Decimal(shown) if isinstance(expected, Decimal) else shown) == expected, key


def test_tenant_set_refuses_bad_values_and_changes_nothing(fidelia):
    create_tenant(fidelia)
    before = show(fidelia)
    for key, value in BAD_SETTINGS:
        # "--": a value such as "-5" is an argument, not an option.
        result = fidelia("tenant", "set", "cafe", "--", key, value, ok=False)
        assert result.returncode != 0, (key, value)
        assert result.stdout == "", (key, value)
        assert result.stderr.startswith("error: "), (key, value, result.stderr)
        assert "Traceback" not in result.stderr
        assert key in result.stderr or value in result.stderr, result.stderr
    assert "known:" in result.stderr  # the unknown key lists the known ones
    assert show(fidelia) == before

    nobody = fidelia("tenant", "set", "nadie", "currency", "EUR", ok=False)
    assert nobody.returncode != 0 and "nadie" in nobody.stderr


@contextmanager
def serving(database_url: str, cwd: Path) -> Iterator[str]:
    """``fidelia serve`` in a subprocess; always killed on the way out."""
    port = free_port()
    log = (cwd / "serve.log").open("w")
    proc = subprocess.Popen(
        [str(FIDELIA), "serve", "--port", str(port)],
        env=environment(database_url),
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, (cwd / "serve.log").read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "fidelia serve did not come up"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def test_running_server_honours_tenant_set(fidelia, sqlite_url, tmp_path):
    key = create_tenant(fidelia)["api_key"]
    with serving(sqlite_url, tmp_path) as url, httpx.Client(base_url=url, timeout=10) as client:

        def expires_in() -> int:
            response = client.post(GENERAR, headers={"X-API-Key": key})
            assert response.status_code == 200, response.text
            return int(response.json()["expires_in"])

        assert expires_in() == 1800
        fidelia("tenant", "set", "cafe", "pin_lifetime_minutes", "5")
        changed = time.monotonic()
        # At most 20 PINs: the door allows 30 a minute from one IP.
        while (seen := expires_in()) != 300 and time.monotonic() - changed < 5:
            time.sleep(0.3)
        took = time.monotonic() - changed
        print(f"\n[cli] the running server saw pin_lifetime_minutes=5 after {took:.1f} s")
        assert seen == 300


def test_demo_shows_one_stable_key_that_works(fidelia, sqlite_url):
    keys = []
    for _ in range(2):
        out = fidelia("demo").stdout
        assert "cafe-demo" in out
        found = re.search(r"API key: +(\S+)", out)
        assert found, out
        keys.append(found.group(1))
    assert keys[0] == keys[1]  # shown again, not a new key on every start
    listed = fidelia("apikey", "list", "--tenant", "cafe-demo", "--json").stdout.splitlines()
    assert len(listed) == 1

    with door(sqlite_url) as client:
        comercio = client.get("/api/v1/redimir/comercio/cafe-demo").json()
        assert [p["titulo"] for p in comercio["promociones"]] == ["Café gratis"]
        response = client.post(GENERAR, headers={"X-API-Key": keys[0]})
        assert response.status_code == 200, response.text
        assert response.json()["id_comercio"] == comercio["comercio"]["id"]

    # Revoked, the demo key is replaced by the next one, which works; the old one does not.
    fidelia("apikey", "revoke", keys[0])
    fresh = re.search(r"API key: +(\S+)", fidelia("demo").stdout).group(1)
    assert fresh != keys[0]
    with door(sqlite_url) as client:
        assert client.post(GENERAR, headers={"X-API-Key": keys[0]}).status_code == 401
        assert client.post(GENERAR, headers={"X-API-Key": fresh}).status_code == 200


def test_the_cli_finds_the_servers_database_from_any_folder(tmp_path):
    """Without FIDELIA_DATABASE_URL the database lives in the user's data folder, not in
    the folder the command was started from."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIDELIA_")}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    outputs = []
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        result = subprocess.run(
            [str(FIDELIA), "tenant", "list", "--json"]
            if outputs
            else [str(FIDELIA), "tenant", "create", "--slug", "loja", "--name", "Loja", "--json"],
            env=env,
            cwd=tmp_path / folder,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
        assert list((tmp_path / folder).iterdir()) == []  # no stray fidelia.db here
    assert json.loads(outputs[1])["slug"] == "loja"
    assert (tmp_path / "data" / "fidelia" / "fidelia.db").exists()


def test_lists_and_reward_disable(fidelia, sqlite_url):
    create_tenant(fidelia, "cafe", "--currency", "BRL")
    create_tenant(fidelia, "loja")
    tenants = [json.loads(line) for line in fidelia("tenant", "list", "--json").stdout.splitlines()]
    assert [(t["slug"], t["name"]) for t in tenants] == [("cafe", "Café Uno"), ("loja", "Café Uno")]
    assert "Café Uno" in fidelia("tenant", "list").stdout  # a table, non-ASCII kept

    second = one_json(fidelia("apikey", "create", "--tenant", "cafe", "--json"))
    fidelia("apikey", "revoke", second["token"])
    keys = [
        json.loads(x)
        for x in fidelia("apikey", "list", "--tenant", "cafe", "--json").stdout.splitlines()
    ]
    assert [k["token"] for k in keys][0] == second["token"]  # newest first
    assert keys[0]["revoked_at"] is not None and keys[1]["revoked_at"] is None
    assert keys[0]["api_key"].endswith(second["api_key"][-4:])
    assert second["api_key"] not in fidelia("apikey", "list", "--tenant", "cafe").stdout

    reward = one_json(
        fidelia(
            "reward",
            "create",
            "--tenant",
            "cafe",
            "--title",
            "Pão de queijo",
            "--points",
            "5",
            "--type",
            "fixed",
            "--value",
            "7.5",
            "--json",
        )
    )
    listed = [
        json.loads(x)
        for x in fidelia("reward", "list", "--tenant", "cafe", "--json").stdout.splitlines()
    ]
    assert listed == [
        {
            "id": reward["id"],
            "title": "Pão de queijo",
            "type": "fixed",
            "points": 5,
            "value": "7.50",
            "stock": None,
            "active": True,
        }
    ]
    fidelia("reward", "disable", str(reward["id"]), "--tenant", "cafe")
    with door(sqlite_url) as client:
        assert client.get("/api/v1/redimir/comercio/cafe").json()["promociones"] == []
    assert (
        fidelia("reward", "disable", str(reward["id"]), "--tenant", "loja", ok=False).returncode
        == 1
    )
    fidelia("reward", "enable", str(reward["id"]), "--tenant", "cafe")
    with door(sqlite_url) as client:
        assert len(client.get("/api/v1/redimir/comercio/cafe").json()["promociones"]) == 1


def test_tenant_set_help_names_every_setting_with_its_unit(fidelia):
    from fidelia.tenants.service import SETTINGS

    text = " ".join(fidelia("tenant", "set", "--help").stdout.split())
    for key in SETTINGS:
        assert key in text, key
    assert "cashback_percent (%)" in text


# What a start of the command must not load: each command imports what it uses, so `--help`
# or `tenant set --help` costs the interpreter and Typer, not the whole platform.
HEAVY_LIBRARIES = {"sqlalchemy", "alembic", "pydantic", "pydantic_settings", "fastapi", "httpx"}
HEAVY_MODULES = {"fidelia.app", "fidelia.models", "fidelia.kit.db", "fidelia.kit.settings"}
HEAVY_MODULES |= {"fidelia.tenants.service", "fidelia.connectors.bling.client"}


def test_importing_the_command_loads_no_database_web_or_settings_module():
    source = Path(__file__).resolve().parent.parent  # `-c` imports this tree's fidelia
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, fidelia.cli; print(*sorted(sys.modules))"],
        cwd=source,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert "fidelia.cli" in loaded
    heavy = [m for m in loaded if m.split(".")[0] in HEAVY_LIBRARIES or m in HEAVY_MODULES]
    assert heavy == []


def test_money_prints_with_the_currencys_decimals(fidelia):
    create_tenant(fidelia, "cafe", "--currency", "BRL")
    fidelia("tenant", "set", "cafe", "min_purchase", "15")
    fidelia("tenant", "set", "cafe", "point_value", "0.1")
    fidelia("tenant", "set", "cafe", "earn_points_per_unit", "100")
    shown = show(fidelia)
    assert (shown["min_purchase"], shown["point_value"], shown["earn_points_per_unit"]) == (
        "15.00",
        "0.10",
        "100",
    )
    assert '"Café Uno"' in fidelia("tenant", "show", "cafe", "--json").stdout


def test_serve_on_a_busy_port_fails_before_printing_a_key(sqlite_url, tmp_path):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = subprocess.run(
            [str(FIDELIA), "serve", "--demo", "--port", str(port)],
            env=environment(sqlite_url),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert "API key" not in result.stdout
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "PORT=" in result.stderr


def test_on_postgresql(pg, tmp_path):
    name = f"cli_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # empty: migrate builds it
    url = pg.url(name)
    try:
        fidelia = runner(url, tmp_path)
        fidelia("migrate")
        created = create_tenant(fidelia, "cafe", "--currency", "BRL", "--min-purchase", "10.5")
        key = one_json(fidelia("apikey", "create", "--tenant", "cafe", "--json"))["api_key"]
        reward = one_json(
            fidelia(
                "reward", "create", "--tenant", "cafe", "--title", "T", "--points", "5", "--json"
            )
        )
        fidelia("tenant", "set", "cafe", "pin_lifetime_minutes", "5")
        assert fidelia("tenant", "set", "cafe", "currency", "nope", ok=False).returncode != 0
        shown = show(fidelia)
        assert shown["currency"] == "BRL" and shown["pin_lifetime_minutes"] == 5
        assert Decimal(shown["min_purchase"]) == Decimal("10.5")
        with door(url) as client:
            pin = client.post(GENERAR, headers={"X-API-Key": key}).json()
            assert pin["expires_in"] == 300 and pin["id_comercio"] == created["id"]
            fidelia("apikey", "revoke", key)
            assert client.post(GENERAR, headers={"X-API-Key": key}).status_code == 401
            comercio = client.get("/api/v1/redimir/comercio/cafe").json()
            assert [p["id"] for p in comercio["promociones"]] == [reward["id"]]
    finally:
        with psycopg.connect(pg.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
