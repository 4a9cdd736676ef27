"""The retail door's busiest write by the edge's lanes (``fidelia/edge.py Lane``): the
transaction. The function takes the request the route would and returns what its endpoint
returns, through the same functions in the same order (the caller's headers, key and
per-key limit, ``retail_caller``; the endpoint itself), so the answers are the
framework's, byte for byte. What is not the common case (a required header missing, no
JSON object body, a body the model refuses) is left to the framework before anything is
counted or written: its ``RetailRoute`` then answers FastAPI's validation errors in the
door's format, as it always has. The route sits in a router included under ``/v1``: its
lane is the route as included (``lanes_for``)."""

from typing import Any

from starlette.requests import Request

from fidelia.dialects.retail_v1.auth import retail_caller
from fidelia.dialects.retail_v1.schemas import TransactionRequest
from fidelia.dialects.retail_v1.transactions import transaction
from fidelia.edge import FRAMEWORK, Framework, Way, model_body
from fidelia.state import get_state

# ``retail_caller``'s headers, in its parameters' order (FastAPI: any text, the first one).
HEADERS = ("x-api-key", "x-source-type", "x-source-name", "x-branch-id", "x-pos-id")


async def sale(request: Request) -> Any:
    """``POST /v1/transaction`` with every required header and a JSON body its model
    takes (a sale, or the cancel action)."""
    body = await model_body(request, TransactionRequest)
    if isinstance(body, Framework):
        return FRAMEWORK
    headers = request.headers
    given = [value for name in HEADERS if (value := headers.get(name)) is not None]
    if len(given) < len(HEADERS):
        return FRAMEWORK
    state = await get_state(request)
    caller = await retail_caller(state, *given)
    return await transaction(body, caller, state)


# Each route's endpoint: its lane, and the route's dependencies the lane calls, in order.
LANES: dict[Any, Way] = {
    transaction: Way(sale, (get_state, retail_caller)),
}
