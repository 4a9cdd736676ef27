"""Seed 000: the PIN door (``/api/v1/integraciones``) and public lookup and redemption
(``/api/v1/redimir``), exactly as the integration guide documents them."""

import io
from collections.abc import Awaitable, Callable
from typing import Annotated
from zoneinfo import ZoneInfo

import segno
from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from fidelia.challenges import short_codes
from fidelia.customers.standing import (
    Catalog,
    Standing,
    read_catalogs,
    standings,
    standings_now,
)
from fidelia.dialects.pin_whatsapp.errors import render
from fidelia.dialects.pin_whatsapp.schemas import (
    CanjearIn,
    CanjearResponse,
    ComercioOut,
    ComercioResponse,
    ErrorOut,
    GenerarPinIn,
    PinOut,
    PromocionOut,
    ProximaRecompensa,
    PuntosResponse,
    SaldoOut,
)
from fidelia.kit.deps import ReadSessionDep
from fidelia.kit.errors import Forbidden, NotFound, Unauthorized
from fidelia.kit.money import to_minor
from fidelia.kit.phone import normalize_e164
from fidelia.kit.security import digest
from fidelia.messaging.texts import say
from fidelia.models import Pin, Tenant
from fidelia.ops.replica import MayLagSessionDep, may_lag
from fidelia.pins import service as pins
from fidelia.redemptions.service import Redeemer, find_redeemer, redeem, require_recent_visit
from fidelia.rewards.service import active_reward_in, active_rewards
from fidelia.state import AppState, State, state_of
from fidelia.tenants.service import get_by_slug, require_active

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 413, 422, 429, 500)
}
router = APIRouter(prefix="/api/v1", tags=["Seed 000: PIN + WhatsApp"], responses=ERRORS)


# The two dependencies below are async so that, in the common case (counters in memory,
# the key in the cache), they cost no trip to a worker thread; what blocks goes to one.
def rate_limited(name: str) -> Callable[[Request], Awaitable[None]]:
    """The guide's per-IP limit. A call that carries an API key counts per IP *and* key, so
    merchants whose POS share one address (an aggregator, a mall's NAT) do not throttle
    each other; bad keys are held back by the failed-authentication limit."""

    async def check(request: Request) -> None:
        state = state_of(request)
        ip = request.client.host if request.client else "unknown"
        key = request.headers.get("X-API-Key")
        caller = f"{ip}:{digest(key)[:16]}" if key else ip
        await state.limiter.hit_async(state.settings.rate_limit_pin_door, "pin-door", name, caller)

    return check


async def merchant(
    request: Request, x_api_key: Annotated[str | None, Header(alias="X-API-Key")] = None
) -> Tenant:
    state = state_of(request)
    tenant = None
    if x_api_key:
        hit, tenant = state.keys.cached(x_api_key)
        if not hit:
            tenant = await run_in_threadpool(state.keys.tenant_for, state.db, x_api_key)
    if tenant is None:
        raise Unauthorized("API key inválida, revocada o ausente.")
    return tenant


MerchantDep = Annotated[Tenant, Depends(merchant)]


def whatsapp_url(bot_number: str, pin: str) -> str:
    return f"https://wa.me/{bot_number}?text=Quiero+activar+mi+PIN:+{pin}"


@router.post(
    "/integraciones/pin/generar",
    response_model=PinOut,
    dependencies=[Depends(rate_limited("generar"))],
)
async def generar_pin(
    tenant: MerchantDep, request: Request, body: GenerarPinIn | None = None
) -> PinOut:
    """Generate a single-use PIN for a sale; optional ``monto`` is checked against the minimum."""
    state = state_of(request)
    amount = to_minor(body.monto, tenant.currency) if body and body.monto is not None else None
    namespace = pins.namespace_of(tenant, state.settings.bot_number)
    pin: pins.Issued | Pin | None = None
    if not state.db.is_sqlite:
        # One statement from the event loop, in autocommit: no thread hop, one round trip.
        pin = await pins.generate_now(
            state.db, tenant, namespace, amount, state.pin_policy, state.longest_pins
        )
    if pin is None:
        # SQLite, or the code was taken: the transaction in one worker thread (one thread
        # hop, not three: the session's opening, the endpoint and its closing took one each).
        pin = await state.run_in_db_slot(_generate, state, tenant, namespace, amount)
    base = state.settings.public_url.rstrip("/")
    expires_local = pin.expires_at.astimezone(ZoneInfo(tenant.timezone))
    return PinOut(
        pin=pin.code,
        expires_at=expires_local.isoformat(timespec="seconds"),
        expires_in=int((pin.expires_at - pin.created_at).total_seconds()),
        id_comercio=tenant.id,
        whatsapp_url=whatsapp_url(namespace, pin.code),
        qr_svg_url=f"{base}/api/v1/integraciones/pin/{pin.code}/qr.svg",
        qr_png_url=f"{base}/api/v1/integraciones/pin/{pin.code}/qr.png",
    )


def _generate(state: State, tenant: Tenant, namespace: str, amount: int | None) -> Pin:
    with state.db.session() as session:
        return pins.generate(session, tenant, namespace, amount, state.pin_policy)


@router.get(
    "/integraciones/pin/{pin}/qr.{fmt}",
    dependencies=[Depends(rate_limited("qr"))],
    responses={200: {"content": {"image/svg+xml": {}, "image/png": {}}}},
    response_class=Response,
)
def pin_qr(
    pin: str, fmt: str, tenant: MerchantDep, session: ReadSessionDep, state: AppState
) -> Response:
    """The PIN's WhatsApp link as a QR code to print on the invoice (``svg`` or ``png``)."""
    if fmt not in ("svg", "png"):
        raise NotFound("Formats: qr.svg, qr.png.", code="NOT_FOUND")
    found = session.scalar(
        select(Pin).where(Pin.tenant_id == tenant.id, Pin.code == pin).order_by(Pin.id.desc())
    )
    if found is None:
        raise NotFound("PIN desconocido para este comercio.", code="PIN_NOT_FOUND")
    qr = segno.make(whatsapp_url(found.namespace, found.code), error="m", micro=False)
    buffer = io.BytesIO()
    qr.save(buffer, kind=fmt, scale=6, border=2)
    return Response(buffer.getvalue(), media_type="image/svg+xml" if fmt == "svg" else "image/png")


@router.get(
    "/redimir/comercio/{slug}",
    response_model=ComercioResponse,
    dependencies=[Depends(rate_limited("comercio"))],
)
def comercio(slug: str, session: MayLagSessionDep) -> ComercioResponse:
    """A merchant and its active rewards (promociones)."""
    tenant = require_active(get_by_slug(session, slug))
    return ComercioResponse(
        comercio=ComercioOut(id=tenant.id, nombre=tenant.name, slug=tenant.slug),
        promociones=[
            PromocionOut(
                id=r.id,
                titulo=r.title,
                descripcion=r.description,
                puntos_requeridos=r.points_required,
            )
            for r in active_rewards(session, [tenant.id])
        ],
    )


def _saldo(standing: Standing) -> SaldoOut:
    proxima = None
    if standing.next is not None:
        reward, missing = standing.next
        proxima = ProximaRecompensa(
            titulo=reward.title, puntos_requeridos=reward.points_required, puntos_faltantes=missing
        )
    return SaldoOut(
        tipo="grupo" if standing.is_group else "individual",
        nombre=standing.name,
        id_comercio=standing.tenants[0].id,
        comercios=[t.id for t in standing.tenants],
        puntos=standing.points,
        proxima_recompensa=proxima,
    )


@router.get(
    "/redimir/puntos/{wa}",
    response_model=PuntosResponse,
    dependencies=[Depends(rate_limited("puntos"))],
)
async def puntos(wa: str, request: Request, state: AppState) -> PuntosResponse:
    """A WhatsApp number's points at every merchant (``+`` sent as ``%2B``)."""
    number = normalize_e164(wa)
    lag = may_lag(request)
    if state.db.is_sqlite or state.db.replica_engine is not None:
        # In one worker thread (see generar_pin); it may lag, as MayLagSessionDep reads
        # (fidelia/ops/replica.py): with a replica, there.
        found = await state.run_in_db_slot(_standings, state, number, lag)
    else:
        # One statement from the event loop, in autocommit, the catalogs from their cache:
        # no thread hop, one round trip (a thread only for catalogs not held fresh).
        found = await standings_now(
            state.db,
            "whatsapp",
            number,
            state.catalogs,
            lambda programs: state.run_in_db_slot(_catalogs, state, programs, lag),
        )
    if not found:
        raise NotFound("Este WhatsApp no tiene puntos registrados.", code="CUSTOMER_NOT_FOUND")
    data = [_saldo(s) for s in found]
    return PuntosResponse(total=len(data), data=data)


def _standings(state: State, number: str, lag: bool) -> list[Standing]:
    with state.db.session(readonly=True, may_lag=lag) as session:
        return standings(session, "whatsapp", number, state.catalogs)


def _catalogs(state: State, programs: list[int], lag: bool) -> dict[int, Catalog]:
    with state.db.session(readonly=True, may_lag=lag) as session:
        return read_catalogs(session, programs)


@router.post(
    "/redimir/canjear",
    response_model=CanjearResponse,
    dependencies=[Depends(rate_limited("canjear"))],
)
async def canjear(body: CanjearIn, request: Request) -> CanjearResponse | JSONResponse:
    """Redeem a reward: needs a recent accreditation at the merchant and enough points; at a
    merchant that validates customers, also the ``codigo`` the bot gave the customer."""
    # Async, the transaction in one worker thread (see generar_pin).
    state = state_of(request)
    return await state.in_transaction(_canjear, body, state)


def _canjear(session: Session, body: CanjearIn, state: State) -> CanjearResponse | JSONResponse:
    # The merchant and its active rewards from the caches (FIDELIA_TENANT_CACHE_SECONDS).
    tenant = require_active(state.merchants.get(session, body.id_comercio))
    # The customer with their wallet, last earning here and contact: one statement.
    redeemer = _redeemer(session, tenant, str(body.whatsapp))
    customer = redeemer.customer
    rewards = state.catalogs.get(session, tenant.program_id).rewards
    reward = active_reward_in(rewards, tenant.id, body.id_promocion)
    require_recent_visit(session, tenant, redeemer)
    if body.codigo and not short_codes.verify(
        session, tenant, customer, body.codigo.strip(), state.settings.secret_key
    ):
        # An answer, not an exception: the failed try is committed and counted.
        return render(Forbidden("Código inválido, vencido o ya usado.", code="CHALLENGE_REQUIRED"))
    done = redeem(session, tenant, customer, reward, origin="pin", known=redeemer)
    return CanjearResponse(
        puntos_restantes=done.points_left,
        recompensa=reward.title,
        mensaje=say(tenant.locale, "redeemed"),
    )


def _redeemer(session: Session, tenant: Tenant, raw: str) -> Redeemer:
    found = find_redeemer(session, tenant, "whatsapp", normalize_e164(raw), visit=True)
    if found is None:
        raise NotFound("Este WhatsApp no tiene puntos en este comercio.", code="CUSTOMER_NOT_FOUND")
    return found
