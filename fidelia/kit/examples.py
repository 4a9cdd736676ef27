"""Request and response examples for the OpenAPI documents.

Each door keeps its examples in its own ``examples.py``: a mapping from (METHOD, path
template) to an ``Operation`` with parameter examples, request body examples and response
examples per status. ``fidelia.apidocs.illustrate`` merges them into the generated schema,
so the routes stay readable and Swagger UI shows a filled "Try it out" body and a real
answer. A refusal's example is rendered by the door's own error renderer from the engine
error the service raises, so it has the door's exact wire format."""

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response

from fidelia.kit.errors import DomainError


@dataclass(frozen=True)
class Example:
    summary: str
    value: Any
    # The media type it is for; None: every media type the body or response declares.
    media: str | None = None
    description: str | None = None

    def as_openapi(self) -> dict[str, Any]:
        found: dict[str, Any] = {"summary": self.summary, "value": self.value}
        if self.description:
            found["description"] = self.description
        return found


Named = Mapping[str, Example]  # the example's key in the document -> the example


@dataclass(frozen=True)
class Operation:
    params: Mapping[str, Any] = field(default_factory=dict)  # parameter name -> example
    request: Named = field(default_factory=dict)
    responses: Mapping[int, Named] = field(default_factory=dict)  # status -> examples


Catalog = Mapping[tuple[str, str], Operation]  # ("POST", "/v2/sales") -> its examples


@dataclass(frozen=True)
class Refusal:
    status: int
    name: str
    example: Example


def refused(render: Callable[[DomainError], Response], error: DomainError, summary: str) -> Refusal:
    """What the door answers to ``error``, rendered by the door's own renderer."""
    response = render(error)
    return Refusal(
        response.status_code, error.code.lower(), Example(summary, json.loads(bytes(response.body)))
    )


def responses(ok: Mapping[int, Named], *refusals: Refusal) -> dict[int, dict[str, Example]]:
    """The success examples plus the refusals, grouped by status."""
    found: dict[int, dict[str, Example]] = {status: dict(named) for status, named in ok.items()}
    for refusal in refusals:
        found.setdefault(refusal.status, {})[refusal.name] = refusal.example
    return found


def merge(*catalogs: Catalog) -> dict[tuple[str, str], Operation]:
    found: dict[tuple[str, str], Operation] = {}
    for catalog in catalogs:
        for key, operation in catalog.items():
            if key in found:
                raise ValueError(f"Two sets of examples for {key[0]} {key[1]}")
            found[key] = operation
    return found


def _put(content: dict[str, Any], named: Named, where: str) -> None:
    for name, example in named.items():
        medias: Iterable[str] = [example.media] if example.media else list(content)
        for media in medias:
            if media not in content:
                raise KeyError(f"{where}: no {media} to put the example {name!r} on")
            content[media].setdefault("examples", {})[name] = example.as_openapi()


def illustrate(spec: dict[str, Any], catalog: Catalog) -> dict[str, Any]:
    """Put the catalog's examples on the operations of ``spec``. An example for an
    operation, parameter, body or status the document does not have is an error: examples
    must not silently fall out of date with the routes."""
    paths = spec.get("paths", {})
    for (method, path), examples in catalog.items():
        where = f"{method} {path}"
        operation = paths.get(path, {}).get(method.lower())
        if operation is None:
            raise KeyError(f"Examples for {where}, which is not an operation")
        params = {p["name"]: p for p in operation.get("parameters", [])}
        for name, value in examples.params.items():
            if name not in params:
                raise KeyError(f"{where}: no parameter {name!r}")
            params[name]["example"] = value
        if examples.request:
            body = operation.get("requestBody", {}).get("content")
            if not body:
                raise KeyError(f"{where}: request examples but no request body")
            _put(body, examples.request, f"{where} request")
        declared = operation.get("responses", {})
        for status, named in examples.responses.items():
            if str(status) not in declared:
                raise KeyError(f"{where}: no response {status}")
            _put(declared[str(status)].setdefault("content", {}), named, f"{where} {status}")
    return spec
