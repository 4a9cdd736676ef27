"""The POS door's busiest writes by the edge's lanes (``fidelia/edge.py Lane``): the
redemption and the order, called by every sale. Each function takes the request the route
would and returns what its endpoint returns, through the same functions (the merchant's
Basic credentials and per-credential limit, ``pdv_merchant``; the endpoint itself), so the
answers are the framework's, byte for byte. What is not the common case (a reward id that
is not a plain number, no JSON object body, a body the model refuses) is left to the
framework before anything is counted or written.

Only a request without an ``Origin`` header takes these lanes: a POS server sends none, and
``PdvCors`` (inside the edge) passes such a request straight through; a browser's, with
one, goes the framework's way, through ``PdvCors``."""

from typing import Any

from starlette.requests import Request
from starlette.types import Scope

from fidelia.dialects.pdv.auth import pdv_merchant
from fidelia.dialects.pdv.orders import register_order
from fidelia.dialects.pdv.rewards import redeem
from fidelia.dialects.pdv.schemas import OrderIn, RedeemIn
from fidelia.edge import FRAMEWORK, Framework, Way, model_body
from fidelia.kit.ids import as_id
from fidelia.state import get_state

ORIGIN = b"origin"


def without_origin(scope: Scope) -> bool:
    """A request ``PdvCors`` passes straight through (browsers send ``Origin``)."""
    return all(name != ORIGIN for name, _ in scope["headers"])


async def redemption(request: Request) -> Any:
    """``POST /v1/pvt/POS/rewards/{reward_id}/redeem``: a reward id of plain digits that is
    an id (``IdPath``: what FastAPI takes and gives as the same number), and a JSON body its
    model takes."""
    reward_id = as_id(request.path_params["reward_id"])
    if reward_id is None:
        return FRAMEWORK
    body = await model_body(request, RedeemIn)
    if isinstance(body, Framework):
        return FRAMEWORK
    tenant = await pdv_merchant(request)
    return await redeem(reward_id, body, tenant, request)


async def order(request: Request) -> Any:
    """``POST /v1/pvt/POS/orders`` with a JSON body its model takes."""
    body = await model_body(request, OrderIn)
    if isinstance(body, Framework):
        return FRAMEWORK
    tenant = await pdv_merchant(request)
    return await register_order(body, tenant, await get_state(request))


# Each route's endpoint: its lane, and the route's dependencies the lane calls, in order.
LANES: dict[Any, Way] = {
    redeem: Way(redemption, (pdv_merchant,), when=without_origin),
    register_order: Way(order, (pdv_merchant, get_state), when=without_origin),
}
