"""What the lanes' tests share (fidelia/edge.py ``Lane``): the same app with its lanes
closed, an answer as a comparable value, and a lane by its route."""

import json
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from fidelia.app import create_app
from fidelia.edge import Lane
from fidelia.kit.settings import Settings
from fidelia.ops import metrics

REQUEST_ID = "req-1234567"


@contextmanager
def served(settings: Settings, *, lanes: bool) -> Iterator[TestClient]:
    """A client of another app like the one under test (the same database, limits of its
    own), its lanes open or closed: closed, every request goes through FastAPI's layers."""
    app = create_app(settings, run_worker=False)
    if not lanes:
        app.state.lanes.clear()
    with TestClient(app) as client:
        yield client
    app.state.fidelia.db.dispose()


def closed(settings: Settings) -> "AbstractContextManager[TestClient]":
    """The framework's way: ``served`` with the lanes closed."""
    return served(settings, lanes=False)


def answer(
    client: TestClient, method: str, url: str, *, normal: tuple[str, ...] = (), **kw: Any
) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, sorted headers, body) with a fixed X-Request-ID. ``normal``: the JSON
    fields (by name, at any depth) whose values are ids or codes that differ from one write
    to the next, each replaced by its name in the body (and its length in the headers)."""
    headers = {**kw.pop("headers", {}), "X-Request-ID": REQUEST_ID}
    response = client.request(method, url, headers=headers, **kw)
    body = response.content
    found = []
    for name in normal:
        pattern = rb'"' + name.encode() + rb'":("[^"]*"|-?\d+)'
        found += re.findall(pattern, body)
        body = re.sub(pattern, b'"' + name.encode() + b'":"' + name.encode() + b'"', body)
    head = sorted(response.headers.items())
    if found:  # the length of a body with those values replaced changes with them
        head = [(k, "*" if k == "content-length" else v) for k, v in head]
    return response.status_code, head, body


def lane_of(app: FastAPI, path: str) -> Lane:
    (lane,) = [lane for lane in app.state.lanes if lane.path == path]
    return lane


def counted(door: str, route: str, method: str, status: str) -> float:
    """The requests counted under this label set (both ways must count under one)."""
    value: float = metrics.REQUESTS.labels(door, route, method, status)._value.get()
    return value


def json_body(value: Any) -> dict[str, Any]:
    return {"headers": {"Content-Type": "application/json"}, "content": json.dumps(value).encode()}
