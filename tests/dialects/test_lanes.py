"""The edge's lanes as machinery (fidelia/edge.py ``Lane``, ``lanes_for``, ``Way``): a lane
is built from the route as the app includes it (the full path under nested routers'
prefixes, every router's dependencies), refused when its door does not call every one of
those dependencies, and taken only by the requests its ``when`` admits. The doors' own
lanes are tested against the framework in test_pin_lanes.py and the doors' folders."""

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel

from fidelia.edge import FRAMEWORK, Edge, Way, dependencies, lanes_for
from fidelia.kit.auth_failures import AuthFailureLimit
from fidelia.kit.body_limit import BodyLimit
from fidelia.kit.paths import CollapseSlashes
from fidelia.kit.ratelimit import RateLimiter
from fidelia.kit.rendering import default_render
from fidelia.ops.web import route_of

CALLS: list[str] = []


async def parent_check(request: Request) -> None:
    CALLS.append("parent")


async def who(request: Request) -> str:
    CALLS.append("who")
    return request.headers.get("x-who", "nobody")


class Out(BaseModel):
    id: int
    who: str


def make_app(ways_of) -> tuple[FastAPI, list]:
    child = APIRouter()

    @child.post("/things/{id}", response_model=Out, status_code=201)
    async def create(id: int, caller: str = Depends(who)) -> dict:
        CALLS.append("endpoint")
        return {"id": id, "who": caller, "dropped": True}  # the model drops the extra

    parent = APIRouter(prefix="/v9", dependencies=[Depends(parent_check)])
    parent.include_router(child)
    app = FastAPI()
    app.include_router(parent)
    lanes = lanes_for(app, {create: ways_of(create)})
    return app, lanes


def edge(app: FastAPI, lanes: list) -> Edge:
    return Edge(
        app,
        slashes=CollapseSlashes(),
        log=_Log(),
        auth_failures=AuthFailureLimit(RateLimiter("", enabled=False), "10/minute"),
        body=BodyLimit(1000),
        render=lambda request, error: default_render(error),
        lanes=lanes,
    )


class _Log:
    """The request log's calls, keeping the route each request was recorded under."""

    routes: list[str] = []

    def start(self, scope):
        from fidelia.ops.context import RequestContext

        return RequestContext("req-1")

    def stamp(self, message, ctx):
        pass

    def record(self, scope, ctx, status, seconds):
        self.routes.append(route_of(scope))


async def fast(request: Request):
    if request.headers.get("x-framework"):
        return FRAMEWORK
    await parent_check(request)
    caller = await who(request)
    return await request.scope["endpoint"](int(request.path_params["id"]), caller)


def test_a_lane_is_the_route_as_included_under_every_prefix_and_dependency():
    app, (lane,) = make_app(lambda create: Way(fast, (parent_check, who)))
    assert lane.path == "/v9/things/{id}" and lane.route.path == "/things/{id}"
    assert lane.status == 201
    client = TestClient(edge(app, [lane]))
    CALLS.clear()
    taken = client.post("/v9/things/7", headers={"x-who": "ana"})
    assert CALLS == ["parent", "who", "endpoint"]
    CALLS.clear()
    left = client.post("/v9/things/7", headers={"x-who": "ana", "x-framework": "1"})
    assert CALLS == ["parent", "who", "endpoint"]  # the framework's own, in the same order
    assert (taken.status_code, taken.content) == (left.status_code, left.content)
    assert taken.json() == {"id": 7, "who": "ana"}
    assert (lane.taken, lane.left) == (1, 1)
    # The log's route: the full template, under every prefix, both ways.
    assert _Log.routes[-2:] == ["/v9/things/{id}", "/v9/things/{id}"]
    for path, method in [
        ("/things/7", "POST"),
        ("/v9/things/x/y", "POST"),
        ("/v9/things/7", "GET"),
    ]:
        assert lane.matches({"type": "http", "path": path, "method": method}) is None


def test_a_lane_that_skips_a_dependency_of_any_router_is_refused():
    with pytest.raises(ValueError, match="parent_check"):
        make_app(lambda create: Way(fast, (who,)))
    with pytest.raises(ValueError, match="depends on"):
        make_app(lambda create: Way(fast, (who, parent_check)))  # not in FastAPI's order


def test_every_way_finds_its_route():
    app = FastAPI()
    with pytest.raises(ValueError, match="no route"):
        lanes_for(app, {fast: Way(fast, ())})


def test_when_leaves_the_other_requests_to_the_framework():
    app, (lane,) = make_app(
        lambda create: Way(fast, (parent_check, who), when=lambda scope: scope["method"] == "POST")
    )
    scope = {"type": "http", "path": "/v9/things/7", "method": "POST", "headers": []}
    assert lane.matches(scope) == {"id": "7"}
    app, (lane,) = make_app(lambda create: Way(fast, (parent_check, who), when=lambda scope: False))
    assert lane.matches(scope) is None


def test_dependencies_are_listed_in_fastapis_order_each_once():
    async def shared(request: Request) -> None: ...

    async def outer(request: Request, _: None = Depends(shared)) -> None: ...

    app = FastAPI()

    @app.get("/x", dependencies=[Depends(parent_check)])
    async def x(_: None = Depends(outer), __: None = Depends(shared)) -> None: ...

    (route,) = [r for r in app.router.routes if getattr(r, "path", None) == "/x"]
    assert list(dependencies(route.dependant)) == [parent_check, shared, outer]
