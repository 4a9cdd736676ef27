"""``pip install .`` of a clean checkout gives a working ``fidelia``: a wheel built from the
tracked files only (as a fresh clone has them), installed into a new virtualenv, serves
every door, the panel with its npm files and catalogues, and the API docs' assets, after
migrating an empty database. Offline: the wheel is built without build isolation and
installed without an index; the new venv sees this interpreter's installed dependencies
through a .pth line (those directories' own .pth files, like an editable install of this
checkout, are not read), so ``fidelia`` itself can only come from the wheel.

The panel's npm files come from ``node_modules`` (``make assets``): linked into the copy so
the build hook copies them without ``npm ci``.
"""

import base64
import json
import os
import shutil
import site
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from fidelia.panel.assets import FILES as PANEL_VENDOR_FILES
from tests.support.postgres import free_port

ROOT = Path(__file__).resolve().parent.parent
VERIFY = "packaging-verify-token"


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def clean_copy(target: Path) -> list[str]:
    """The tracked files of this checkout (what a fresh clone has), and node_modules linked."""
    tracked = run("git", "ls-files", "-z", cwd=ROOT).split("\0")
    tracked = [name for name in tracked if name and (ROOT / name).is_file()]
    for name in tracked:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)
    modules = ROOT / "node_modules"
    assert modules.is_dir(), "node_modules is missing: run `make assets` (make test does)"
    (target / "node_modules").symlink_to(modules)
    return tracked


def outside_env(database_url: str) -> dict[str, str]:
    """No PYTHONPATH, no FIDELIA_ setting of this process: only what the test sets."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FIDELIA_", "PYTHON", "VIRTUAL_ENV"))
    }
    env["FIDELIA_DATABASE_URL"] = database_url
    env["FIDELIA_WHATSAPP_VERIFY_TOKEN"] = VERIFY
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """(the new venv, the built wheel, the tracked files it was built from)."""
    base = tmp_path_factory.mktemp("packaging")
    source = base / "checkout"
    source.mkdir()
    tracked = clean_copy(source)
    dist = base / "dist"
    run(
        sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index",
        "--no-build-isolation", "--disable-pip-version-check", "-w", dist, source, cwd=base,
    )  # fmt: skip
    (wheel,) = dist.glob("fidelia-*.whl")
    venv = base / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=base)
    python = venv / "bin" / "python"
    run(
        sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
        "--no-index", "--disable-pip-version-check", wheel, cwd=base,
    )  # fmt: skip
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=base)
    deps = [p for p in (*site.getsitepackages(), site.getusersitepackages()) if Path(p).is_dir()]
    (Path(purelib.strip()) / "fidelia-test-deps.pth").write_text("\n".join(deps) + "\n")
    return venv, wheel, tracked


def test_the_wheel_carries_every_file_of_the_package(installed):
    _venv, wheel, tracked = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {name for name in tracked if name.startswith("fidelia/")}
    wanted |= {f"fidelia/panel/static/vendor/{name}" for name in PANEL_VENDOR_FILES}
    missing = sorted(wanted - names)
    assert not missing, f"not in the wheel (package-data in pyproject.toml): {missing}"
    assert any(n.endswith("entry_points.txt") for n in names)


def test_pip_install_serves_every_door_and_the_panel(installed, tmp_path):
    venv, _wheel, _tracked = installed
    env = outside_env(f"sqlite:///{tmp_path / 'fidelia.db'}")
    fidelia = venv / "bin" / "fidelia"
    where = run(venv / "bin" / "python", "-c", "import fidelia; print(fidelia.__file__)",
                cwd=tmp_path, env=env)  # fmt: skip
    assert where.strip().startswith(str(venv)), where  # the wheel's copy, not this checkout

    port = free_port()
    env["FIDELIA_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [str(fidelia), "serve", "--port", str(port), "--no-worker"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:  # `serve` migrates the empty database first
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        created = run(fidelia, "tenant", "create", "--slug", "cafe", "--name", "Café Uno",
                      "--json", cwd=tmp_path, env=env)  # fmt: skip
        tenant = json.loads(created)
        key, token = tenant["api_key"], tenant["token"]
        with httpx.Client(base_url=url, timeout=10) as client:
            check_doors(client, key, token)
            check_panel_and_docs(client)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()


def check_doors(client: httpx.Client, key: str, token: str) -> None:
    """One request per door, each answered by the door itself (its own format)."""
    pin = client.post("/api/v1/integraciones/pin/generar", headers={"X-API-Key": key})
    assert pin.status_code == 200 and pin.json()["pin"], pin.text
    assert client.get("/api/v1/redimir/comercio/cafe").json()["comercio"]["slug"] == "cafe"

    basic = base64.b64encode(f"{token}:{key}".encode()).decode()
    pos = client.post(
        "/v1/pvt/POS/rewards/available",
        headers={"Authorization": f"Basic {basic}"},
        json={"CustomerId": "52998224725", "PurchaseValue": 100},
    )
    assert pos.status_code == 200 and "AvailableCashback" in pos.json(), pos.text

    retail_headers = {
        "x-api-key": key,
        "x-source-type": "POS",
        "x-source-name": "packaging",
        "x-branch-id": "B1",
        "x-pos-id": "P1",
    }
    member = {"member": {"phoneNumber": "+5511987650001"}}
    registered = client.post("/v1/member/register", headers=retail_headers, json=member)
    assert registered.status_code == 200, registered.text
    details = client.post("/v1/member/details", headers=retail_headers, json=member)
    assert details.status_code == 200, details.text
    memberid = registered.json()["data"]["member"]["memberId"]
    assert details.json()["data"]["member"]["memberId"] == memberid

    issued = client.post("/v2/auth/token", json={"api_key": token, "api_secret": key})
    assert issued.status_code == 200, issued.text
    bearer = {"Authorization": f"Bearer {issued.json()['access_token']}"}
    customers = client.get("/v2/customers", headers=bearer)
    assert customers.status_code == 200, customers.text

    handshake = client.get(
        "/webhooks/whatsapp",
        params={"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "42"},
    )
    assert (handshake.status_code, handshake.text) == (200, "42")
    unsigned = client.post("/webhooks/bling", json={"eventId": "1"})
    assert unsigned.status_code == 401 and "INVALID_SIGNATURE" in unsigned.text


def check_panel_and_docs(client: httpx.Client) -> None:
    """Templates, static and vendor files, the catalogues (Spanish), the API docs' assets."""
    home = client.get("/")
    assert home.status_code == 200 and "text/html" in home.headers["content-type"]
    login = client.get("/panel/login", headers={"Accept-Language": "es"})
    assert login.status_code == 200, login.text
    assert "Entrar" in login.text  # from locales/es/LC_MESSAGES/messages.po
    for name in ("htmx.min.js", "pico.min.css"):
        assert f"/panel/static/vendor/{name}" in login.text
    for path in (
        "/panel/static/vendor/htmx.min.js",
        "/panel/static/vendor/pico.min.css",
        "/panel/static/vendor/chart.umd.min.js",
        "/panel/static/panel.css",
    ):
        asset = client.get(path)
        assert asset.status_code == 200 and len(asset.content) > 100, path
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/docs-assets/" in docs.text
    script = next(
        part.split('"', 1)[0]
        for part in docs.text.split('src="')[1:]
        if part.startswith("/docs-assets/")
    )
    assert client.get(script).status_code == 200, script
    assert client.get("/openapi/pos.json").json()["paths"]
    assert client.get("/simulator").status_code == 200  # fidelia/templates/simulator.html
