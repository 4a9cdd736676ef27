"""The REST v2 door's busiest write by the edge's lanes (``fidelia/edge.py Lane``): the sale.
The function takes the request the route would and returns what its endpoint returns,
through the same functions in the same order (the Bearer scheme, the access token, the
merchant and its per-credential limit; the endpoint itself, with the ``Idempotency-Key``
header as FastAPI gives it), so the answers are the framework's, byte for byte. What is not
the common case (no JSON object body, a body the model refuses) is left to the framework
before anything is counted or written. The route sits in a router included under ``/v2``:
its lane is the route as included (``lanes_for``)."""

from typing import Any

from starlette.requests import Request

from fidelia.dialects.rest_v2.auth import _bearer, access_token, merchant
from fidelia.dialects.rest_v2.sales import register_sale
from fidelia.dialects.rest_v2.schemas import SaleIn
from fidelia.edge import FRAMEWORK, Framework, Way, model_body
from fidelia.state import get_state


async def sale(request: Request) -> Any:
    """``POST /v2/sales`` with a JSON body its model takes."""
    body = await model_body(request, SaleIn)
    if isinstance(body, Framework):
        return FRAMEWORK
    token = await access_token(await _bearer(request))
    state = await get_state(request)
    tenant = await merchant(token, state)
    key = request.headers.get("idempotency-key")  # ``keys.IdempotencyKey``: the first one
    return await register_sale(body, request, tenant, state, key)


# Each route's endpoint: its lane, and the route's dependencies the lane calls, in order.
LANES: dict[Any, Way] = {
    register_sale: Way(sale, (_bearer, access_token, get_state, merchant)),
}
