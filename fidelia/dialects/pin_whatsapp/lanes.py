"""The PIN door's busiest routes by the edge's lanes (``fidelia/edge.py Lane``): PIN
generation, the points lookup and the redemption, called by every sale and every
customer's question, for which FastAPI's layers (routing, dependency resolution, body and
answer models) were a fifth of the CPU (issue 14). Each function takes the request the
route would and returns what its endpoint returns, through the same functions (the rate
limit, the API key, the endpoint itself), so the answers are the framework's, byte for
byte. What is not the common case (no JSON body, a body the model refuses) is left to
the framework before anything is counted or written."""

from typing import Any

from starlette.requests import Request

from fidelia.dialects.pin_whatsapp.routes import (
    canjear,
    generar_pin,
    merchant,
    puntos,
    rate_limited,
)
from fidelia.dialects.pin_whatsapp.schemas import CanjearIn, GenerarPinIn
from fidelia.edge import FRAMEWORK, Framework, Way, model_body
from fidelia.state import get_state, state_of

_GENERAR = rate_limited("generar")  # the routes' own checks, for the same names
_PUNTOS = rate_limited("puntos")
_CANJEAR = rate_limited("canjear")


async def generar(request: Request) -> Any:
    """``POST /api/v1/integraciones/pin/generar`` without a body (the amount is optional),
    or with a JSON body its model takes."""
    body = await model_body(request, GenerarPinIn, optional=True)
    if isinstance(body, Framework):
        return FRAMEWORK
    await _GENERAR(request)
    tenant = await merchant(request, request.headers.get("x-api-key"))
    return await generar_pin(tenant, request, body)


async def saldo(request: Request) -> Any:
    """``GET /api/v1/redimir/puntos/{wa}``: every request (the number is any text)."""
    await _PUNTOS(request)
    return await puntos(request.path_params["wa"], request, state_of(request))


async def canje(request: Request) -> Any:
    """``POST /api/v1/redimir/canjear`` with a JSON body its model takes."""
    body = await model_body(request, CanjearIn)
    if isinstance(body, Framework):
        return FRAMEWORK
    await _CANJEAR(request)
    return await canjear(body, request)


# Each route's endpoint: its lane, and the route's dependencies the lane calls, in order.
LANES: dict[Any, Way] = {
    generar_pin: Way(generar, (_GENERAR, merchant)),
    puntos: Way(saldo, (_PUNTOS, get_state)),  # the state: ``state_of``, what it returns
    canjear: Way(canje, (_CANJEAR,)),
}
