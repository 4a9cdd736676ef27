"""The hot door paths' dependencies: FastAPI solves every dependency of an endpoint (and of
its dependencies) on every request, a cached one too, so the PIN generation, the public
redemption and the POS redemption take the app's state from the request (``state_of``)
instead of ``AppState``: these are what is left to solve on each call. Their answers and
the OpenAPI schema do not change (tests/test_apidocs.py, the doors' tests)."""

from fastapi.routing import APIRoute

from fidelia.dialects.pdv.rewards import router as pdv_rewards
from fidelia.dialects.pin_whatsapp.routes import router as pin_door
from fidelia.state import get_state

HOT = {
    ("POST", "/api/v1/integraciones/pin/generar"): ["check", "merchant"],
    ("POST", "/api/v1/redimir/canjear"): ["check"],
    ("POST", "/v1/pvt/POS/rewards/{reward_id}/redeem"): ["pdv_merchant"],
}


def solved(dependant):
    """Every dependency FastAPI calls for ``dependant``, depth first, in its order."""
    for sub in dependant.dependencies:
        yield from solved(sub)
        yield sub.call


def test_the_hot_paths_solve_no_dependency_for_the_state():
    routes = {
        (method, route.path): route
        for router in (pin_door, pdv_rewards)
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    for key, expected in HOT.items():
        calls = list(solved(routes[key].dependant))
        assert get_state not in calls, key
        assert [call.__name__ for call in calls] == expected, key
