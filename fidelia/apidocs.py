"""API documentation that works offline, door by door.

Swagger UI and ReDoc are served from the pinned ``fastapi-offline`` package's files (nothing
is fetched from a CDN at run time). Besides the combined ``/openapi.json``, each door has its
own document (``/openapi/{door}.json``) and pages (``/docs/{door}``, ``/redoc/{door}``), so an
integrator can generate a client for just the door they use. Every door's security scheme is
declared here, from ``fidelia.doors``, so "Authorize" works for each of them, and every
operation carries request and response examples from its door's ``examples.py``, so "Try it
out" starts from a filled body and shows a real answer."""

import copy
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from fidelia.connectors.bling.examples import EXAMPLES as BLING_EXAMPLES
from fidelia.dialects.pdv.examples import EXAMPLES as POS_EXAMPLES
from fidelia.dialects.pin_whatsapp.examples import EXAMPLES as PIN_EXAMPLES
from fidelia.dialects.rest_v2.examples import EXAMPLES as REST_V2_EXAMPLES
from fidelia.dialects.retail_v1.examples import EXAMPLES as RETAIL_EXAMPLES
from fidelia.doors import DOORS, Door, door_of
from fidelia.kit.examples import illustrate, merge
from fidelia.messaging.examples import EXAMPLES as WEBHOOK_EXAMPLES

ASSETS = "/docs-assets"
_STATIC = Path(fastapi_offline.__file__).parent / "static"
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# Every door's examples, by (METHOD, path template).
EXAMPLES = merge(
    PIN_EXAMPLES, POS_EXAMPLES, RETAIL_EXAMPLES, REST_V2_EXAMPLES, WEBHOOK_EXAMPLES, BLING_EXAMPLES
)


def secure(spec: dict[str, Any]) -> dict[str, Any]:
    """Declare each door's credential: its security scheme on every operation that needs
    it, and no header parameter standing in for the credential."""
    schemes = spec.setdefault("components", {}).setdefault("securitySchemes", {})
    for path, item in spec.get("paths", {}).items():
        door = next((d for d in DOORS if d.owns(path)), None)
        if door is None or not door.schemes:
            continue
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            if not door.secures(method, path):
                operation.pop("security", None)
                continue
            schemes.update(door.schemes)
            operation["security"] = [{name: []} for name in door.schemes]
            operation["parameters"] = [
                p
                for p in operation.get("parameters", [])
                if not (p.get("in") == "header" and p["name"].lower() in door.credential_headers)
            ]
            if not operation["parameters"]:
                del operation["parameters"]
    return spec


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def door_spec(spec: dict[str, Any], door: Door) -> dict[str, Any]:
    """The combined document cut down to one door: its paths, the schemas they reach and
    its security scheme."""
    paths = {p: copy.deepcopy(item) for p, item in spec["paths"].items() if door.owns(p)}
    schemas = spec.get("components", {}).get("schemas", {})
    needed: set[str] = set()
    _refs(paths, needed)
    pending = list(needed)
    while pending:  # schemas that refer to other schemas
        more: set[str] = set()
        _refs(schemas.get(pending.pop(), {}), more)
        pending.extend(more - needed)
        needed |= more
    components: dict[str, Any] = {"schemas": {k: schemas[k] for k in sorted(needed)}}
    if door.schemes:
        components["securitySchemes"] = dict(door.schemes)
    info = dict(spec["info"])
    info["title"] = f"Fidelia: {door.title} ({door.guide})"
    info["description"] = f"Base path `{door.base}`. Authentication: {door.auth}."
    return {"openapi": spec["openapi"], "info": info, "paths": paths, "components": components}


def install(app: FastAPI) -> None:
    """Replace FastAPI's CDN-backed docs with offline ones, for the app and each door."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = illustrate(secure(spec), EXAMPLES)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.mount(ASSETS, StaticFiles(directory=_STATIC), name="docs-assets")

    def swagger(url: str, title: str) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=url,
            title=title,
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    def redoc(url: str, title: str) -> HTMLResponse:
        return get_redoc_html(
            openapi_url=url,
            title=title,
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS}/favicon.png",
            with_google_fonts=False,
        )

    def known(key: str) -> Door:
        door = door_of(key)
        if door is None:
            raise HTTPException(404, f"No door {key!r}; doors: {', '.join(d.key for d in DOORS)}")
        return door

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return swagger("/openapi.json", f"{app.title}: every door")

    @app.get("/redoc", include_in_schema=False)
    def redoc_all() -> HTMLResponse:
        return redoc("/openapi.json", f"{app.title}: every door")

    @app.get("/openapi/{key}.json", include_in_schema=False)
    def door_openapi(key: str) -> JSONResponse:
        return JSONResponse(door_spec(openapi(), known(key)))

    @app.get("/docs/{key}", include_in_schema=False)
    def door_docs(key: str) -> HTMLResponse:
        door = known(key)
        return swagger(f"/openapi/{door.key}.json", f"{app.title}: {door.title}")

    @app.get("/redoc/{key}", include_in_schema=False)
    def door_redoc(key: str) -> HTMLResponse:
        door = known(key)
        return redoc(f"/openapi/{door.key}.json", f"{app.title}: {door.title}")
