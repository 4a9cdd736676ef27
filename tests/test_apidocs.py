"""The API docs work offline and door by door: Swagger UI and ReDoc load only files this
server serves, every door has its own OpenAPI document with its real security scheme, and
the home page lists every door."""

import re

import pytest

from fidelia.doors import DOORS

ASSET = re.compile(r"""(?:src|href)=["']([^"']+)["']|url: *'([^']+)'""")


def local_assets(html: str) -> list[str]:
    found = [a or b for a, b in ASSET.findall(html)]
    assert found, html
    return found


@pytest.fixture(params=["sqlite"])
def database_url(request, tmp_path, sqlite_template):  # the docs do not touch the database
    import shutil

    target = tmp_path / "fidelia.db"
    shutil.copy(sqlite_template, target)
    return f"sqlite:///{target}"


@pytest.mark.parametrize(
    "page",
    ["/docs", "/redoc", *(f"/docs/{d.key}" for d in DOORS), *(f"/redoc/{d.key}" for d in DOORS)],
)
def test_doc_pages_load_only_what_this_server_serves(client, page):
    response = client.get(page)
    assert response.status_code == 200
    for url in local_assets(response.text):
        assert url.startswith("/"), f"{page} loads {url} from elsewhere"
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url
    assert "cdn" not in response.text.lower()
    assert "fonts.googleapis" not in response.text


def test_every_operation_belongs_to_one_door_document(client):
    combined = client.get("/openapi.json").json()
    covered: dict[str, str] = {}
    for door in DOORS:
        spec = client.get(f"/openapi/{door.key}.json").json()
        assert spec["paths"], door.key
        for path in spec["paths"]:
            assert path not in covered, (path, covered.get(path), door.key)
            covered[path] = door.key
        # Every schema a door's operations refer to is in that door's document.
        text = str(spec)
        for name in re.findall(r"#/components/schemas/([\w.-]+)", text):
            assert name in spec["components"]["schemas"], (door.key, name)
    outside = [
        p
        for p in combined["paths"]
        if p not in covered and not p.startswith(("/simulator", "/healthz"))
    ]
    assert outside == []


EXPECTED = {
    "pin": ("PinApiKey", {"type": "apiKey", "in": "header", "name": "X-API-Key"}),
    "pos": ("PosBasic", {"type": "http", "scheme": "basic"}),
    "retail": ("RetailApiKey", {"type": "apiKey", "in": "header", "name": "x-api-key"}),
    "rest-v2": ("BearerToken", {"type": "http", "scheme": "bearer"}),
}


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_each_door_declares_its_real_security_scheme(client, key):
    name, scheme = EXPECTED[key]
    spec = client.get(f"/openapi/{key}.json").json()
    declared = spec["components"]["securitySchemes"][name]
    assert {k: declared[k] for k in scheme} == scheme
    public = {
        ("get", "/api/v1/redimir/comercio/{slug}"),
        ("get", "/api/v1/redimir/puntos/{wa}"),
        ("post", "/api/v1/redimir/canjear"),
        ("post", "/v2/auth/token"),
    }
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if (method, path) in public:
                assert "security" not in operation, (method, path)
                continue
            assert operation.get("security") == [{name: []}], (method, path)
            headers = [
                p["name"].lower() for p in operation.get("parameters", []) if p["in"] == "header"
            ]
            assert "x-api-key" not in headers, (method, path)  # the scheme carries it
    if key == "retail":  # the other required headers stay documented, required
        params = spec["paths"]["/v1/member/details"]["post"]["parameters"]
        required = {p["name"] for p in params if p.get("required")}
        assert {"x-source-type", "x-source-name", "x-branch-id", "x-pos-id"} <= required


def test_an_unknown_door_is_a_404(client):
    assert client.get("/openapi/nope.json").status_code == 404
    assert client.get("/docs/nope").status_code == 404


def test_home_lists_every_door_with_base_auth_and_docs(client):
    html = client.get("/").text
    for door in DOORS:
        row = re.search(rf'<tr data-door="{re.escape(door.key)}">(.*?)</tr>', html, re.S)
        assert row, door.key
        cells = row.group(1)
        assert door.guide in cells and f"<code>{door.base}</code>" in cells
        for link in (f"/docs/{door.key}", f"/redoc/{door.key}", f"/openapi/{door.key}.json"):
            assert f'href="{link}"' in cells
            assert client.get(link).status_code == 200
