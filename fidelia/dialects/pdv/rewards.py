"""Seed 001: rewards available to a customer, redeeming one, and cancelling a redemption.

Two kinds of id travel on this door: a reward *configuration* (``Rewards[].Id`` of
``/rewards/available``, the ``{id}`` of ``/rewards/{id}/redeem``) and a *redemption* (the
redeem answer's ``RewardId``, the ``{id}`` of ``DELETE /rewards/{id}``). Redemption ids are
``REDEMPTION_IDS`` + the row's id, so the two can never be equal: a POS that cancels with
the wrong one gets a 404, never the cancellation of another sale."""

from typing import Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from fidelia.customers.standing import CatalogCache
from fidelia.dialects.pdv.auth import PdvMerchant
from fidelia.dialects.pdv.casing import money_in, money_out
from fidelia.dialects.pdv.common import (
    by_document,
    customer_out,
    read_redeemer,
    redeemer_read,
    require_redeemer,
)
from fidelia.dialects.pdv.errors import ERRORS, envelope
from fidelia.dialects.pdv.schemas import (
    AvailableIn,
    AvailableOut,
    CancelByKeyIn,
    Envelope,
    RedeemIn,
    RewardOut,
)
from fidelia.idempotency.service import claim
from fidelia.kit.deps import ReadSessionDep, SessionDep
from fidelia.kit.errors import DomainError, InvalidInput, NotFound
from fidelia.kit.ids import IdPath, as_id
from fidelia.kit.money import format_money
from fidelia.ledger.service import POINTS
from fidelia.models import Customer, LedgerEntry, Redemption, Reward, Tenant
from fidelia.redemptions import service as redemptions
from fidelia.rewards.eligibility import Offer, evaluate
from fidelia.rewards.service import active_reward_in, active_rewards
from fidelia.state import state_of
from fidelia.tenants.point_value import value_of_points

router = APIRouter(prefix="/v1/pvt/POS", tags=["Seed 001: POS rewards"], responses=ERRORS)
REWARD_TYPES = {"percent": 0, "fixed": 1, "cashback": 3, "custom": 4, "product": 5}
# ProductDiscountMode, as the vendor numbers it.
PRODUCT_MODES = {"percent": 0, "final_price": 1, "gift": 2, "fixed": 3}
# Redemption ids on the wire: far above any reward configuration id, within 32 bits
# (the vendor types these ids int32) for the first 1,147,483,647 redemptions.
REDEMPTION_IDS = 1_000_000_000


def redemption_wire_id(redemption: Redemption) -> int:
    return REDEMPTION_IDS + redemption.id


def product_discount_value(tenant: Tenant, reward: Reward) -> float:
    mode = reward.product_discount_mode or "fixed"
    if mode == "percent":
        return reward.value / 100
    if mode == "gift":
        return 0.0
    return money_out(reward.value, tenant.currency)


def requirements(tenant: Tenant, reward: Reward) -> str:
    parts = []
    if reward.min_purchase:
        parts.append(
            f"Compra mínima de {format_money(reward.min_purchase, tenant.currency, tenant.locale)}"
        )
    if reward.max_share_percent is not None:
        parts.append(f"Até {reward.max_share_percent}% do valor da compra")
    if not reward.cumulative:
        parts.append("Não cumulativo com outros descontos")
    if reward.reward_type == "cashback":
        parts.append(
            f"Uso mínimo de {format_money(max(reward.value, 1), tenant.currency, tenant.locale)}"
        )
    if reward.reward_type == "product" and reward.external_product_id:
        units = reward.product_max_units or 1
        name = reward.product_name or reward.external_product_id
        parts.append(f"{units} unidade{'s' if units > 1 else ''} de {name} por resgate")
    return "; ".join(parts)


def reward_out(tenant: Tenant, offer: Offer, available_cashback: int) -> RewardOut:
    reward = offer.reward
    cashback = reward.reward_type == "cashback"
    product = reward.reward_type == "product"
    if product:
        value = product_discount_value(tenant, reward)
    elif reward.reward_type == "percent":
        value = reward.value / 100
    else:
        value = money_out(reward.value, tenant.currency)
    return RewardOut(
        Id=reward.id,
        Title=reward.title,
        RewardType=REWARD_TYPES[reward.reward_type],
        Value=value,
        CanSelectValue=cashback,
        IsCashback=cashback,
        Requirements=requirements(tenant, reward),
        AvailableCashback=money_out(available_cashback if cashback else 0, tenant.currency),
        MaxCashbackForCurrentPurchase=money_out(offer.max_cashback, tenant.currency),
        CanUse=offer.can_use,
        CannotUseReason=offer.reason,
        Points=reward.points_required,
        RewardCanBeCumulative=reward.cumulative,
        ExternalProductId=reward.external_product_id if product else None,
        ProductDisplayName=(reward.product_name or reward.title) if product else None,
        ProductDiscountMode=PRODUCT_MODES[reward.product_discount_mode or "fixed"]
        if product
        else None,
        ProductDiscountValue=value if product else None,
        ProductMaxUnitsPerRedeem=(reward.product_max_units or 1) if product else None,
        ProductAvailableQuantity=reward.stock if product else None,
    )


@router.post("/rewards/available", response_model=AvailableOut)
def available(body: AvailableIn, tenant: PdvMerchant, session: ReadSessionDep) -> AvailableOut:
    """Every configured reward for this customer and purchase, usable or not, with the reason."""
    purchase = money_in(body.PurchaseValue, tenant.currency)
    discount = money_in(body.DiscountValue, tenant.currency)
    customer = by_document(session, tenant, body.CustomerId)
    wallet = redemptions.wallet_of(session, customer) if customer else None
    spendable = wallet.spendable(tenant) if wallet else 0
    offers = [
        evaluate(tenant, r, wallet, purchase, discount)
        for r in active_rewards(session, [tenant.id])
    ]
    cashback_offers = [o for o in offers if o.reward.reward_type == "cashback"]
    return AvailableOut(
        Customer=customer_out(session, customer) if customer else None,
        Rewards=[reward_out(tenant, o, spendable) for o in offers],
        HasRewards=any(o.can_use for o in offers),
        ShouldValidateCustomer=tenant.should_validate_customer,
        AvailablePoints=wallet.points if wallet else 0,
        CashbackEnabled=bool(cashback_offers),
        AvailableCashback=money_out(spendable, tenant.currency),
        MaxCashbackForCurrentPurchase=money_out(
            max((o.max_cashback for o in cashback_offers), default=0), tenant.currency
        ),
        EligibleValue=money_out(purchase, tenant.currency),
    )


@router.post("/rewards/{reward_id}/redeem", response_model=Envelope)
async def redeem(
    reward_id: IdPath, body: RedeemIn, tenant: PdvMerchant, request: Request
) -> dict[str, Any]:
    """Redeem a reward once per ``OriginalKey``: a retry replays the first answer."""
    # Async, the transaction in one worker thread (State.in_transaction): one thread hop.
    state = state_of(request)  # not AppState: one dependency less to solve (state_of)
    return await state.in_transaction(_redeem, reward_id, body, tenant, state.catalogs)


def _redeem(
    session: Session, reward_id: int, body: RedeemIn, tenant: Tenant, catalogs: CatalogCache
) -> dict[str, Any]:
    # The fingerprint reads amounts as money, so 5.5 and "5.50" are the same request.
    request = {**body.model_dump(mode="json"), "Value": money_in(body.Value, tenant.currency)}
    # The key claimed and the customer read with their wallet and contact: one statement
    # on PostgreSQL (``claim(along=)``).
    along = redeemer_read(tenant, body.CustomerId)
    keyed = claim(
        session,
        tenant.id,
        "pdv.redeem",
        body.OriginalKey,
        {"reward": reward_id, **request},
        along=along,
    )
    if keyed.replay is not None:
        return keyed.replay
    if along is not None:
        redeemer = read_redeemer(session, keyed.along)
    else:  # no CPF, CNPJ or e-mail: refused after the claim, as without the read
        redeemer = require_redeemer(session, tenant, body.CustomerId)
    customer = redeemer.customer
    # The merchant's active rewards from the cache (FIDELIA_TENANT_CACHE_SECONDS).
    rewards = catalogs.get(session, tenant.program_id).rewards
    reward = active_reward_in(rewards, tenant.id, reward_id)
    if reward.reward_type == "product" and not reward.external_product_id:
        raise DomainError(
            "This product reward has no product id for the POS; the merchant must set it.",
            code="REWARD_NOT_USABLE",
        )
    cash_value = cashback_value(tenant, body) if reward.reward_type == "cashback" else None
    done = redemptions.redeem(
        session,
        tenant,
        customer,
        reward,
        origin="pdv",
        cash_value=cash_value,
        original_key=body.OriginalKey,
        known=redeemer,
    )
    entry = done.points_entry
    wire_id = REDEMPTION_IDS + done.redemption_id  # redemption_wire_id
    answer = envelope(
        {
            # This redemption, what DELETE /rewards/{id} takes (the vendor's example answers
            # a redeem of reward 5 with RewardId 123); Id is the same number.
            "RewardId": wire_id,
            "Id": wire_id,
            "RewardConfigurationId": reward.id,
            "Point": {
                "PointId": entry.id if entry else None,
                "Quantity": entry.amount if entry else 0,
                "Metadatas": [m.model_dump(mode="json") for m in body.Metadatas or []],
            },
            "ExternalCode": done.external_code,
            "OriginalKey": body.OriginalKey,
            "Coupon": None,  # a POS redemption makes no coupon: the POS applies the discount
            "ExternalProductId": reward.external_product_id
            if reward.reward_type == "product"
            else None,
        }
    )
    keyed.store(answer)
    return answer


def cashback_value(tenant: Tenant, body: RedeemIn) -> int:
    """The amount a cashback redemption uses: ``Value``, or ``Points`` at the point value."""
    if body.Value is not None:
        value = money_in(body.Value, tenant.currency)
    elif body.Points is not None:
        if body.Points <= 0:
            raise InvalidInput("Points must be positive.", code="INVALID_AMOUNT")
        value = value_of_points(tenant, body.Points)
    else:
        value = 0
    if not value:
        raise InvalidInput(
            "A cashback reward needs the Value (or Points) to use.", code="INVALID_AMOUNT"
        )
    return value


def cancelled_out(session: Session, tenant: Tenant, redemption: Redemption) -> dict[str, Any]:
    given_back = session.scalar(
        select(LedgerEntry.id)
        .where(
            LedgerEntry.program_id == redemption.program_id,
            LedgerEntry.source_type == "redemption",
            LedgerEntry.source_id == str(redemption.id),
            LedgerEntry.kind == "reverse",
            LedgerEntry.account == POINTS,
        )
        .order_by(LedgerEntry.id)
        .limit(1)
    )
    cancelled = redemption.status == "cancelled"
    wire_id = redemption_wire_id(redemption)
    return envelope(
        {
            "Id": wire_id,
            "RewardId": wire_id,
            "RewardConfigurationId": redemption.reward_id,
            "Customer": customer_out(session, session.get_one(Customer, redemption.customer_id)),
            "ExternalCode": redemption.external_code,
            "CashValue": money_out(redemption.value, tenant.currency),
            "IsCanceled": cancelled,
            "RedeemDate": redemption.created_at.isoformat(),
            "Points": {
                "Id": given_back,  # the ledger entry that gave the points back
                "Points": redemption.points if cancelled else 0,
                "Type": 0,
                "EventKey": redemption.original_key or redemption.external_code,
                "Quantity": redemption.points,
            },
        }
    )


@router.delete("/rewards/{redemption_ref}", response_model=Envelope)
def cancel_redemption(
    redemption_ref: str, tenant: PdvMerchant, session: SessionDep
) -> dict[str, Any]:
    """Cancel a redemption (the redeem answer's ``RewardId``, or its ``ExternalCode``)
    while its order is not complete."""
    number = as_id(redemption_ref)
    if number is not None:
        if number <= REDEMPTION_IDS:
            raise NotFound(
                f"{number} is not a redemption: cancel with the RewardId of the redeem answer "
                "(a reward configuration id cannot be cancelled).",
                code="REDEMPTION_NOT_FOUND",
            )
        redemption = redemptions.find_redemption(session, tenant, id=number - REDEMPTION_IDS)
    else:
        redemption = redemptions.find_redemption(session, tenant, external_code=redemption_ref)
    redemptions.cancel(session, redemption)
    return cancelled_out(session, tenant, redemption)


@router.delete("/rewards", response_model=Envelope)
def cancel_redemption_by_key(
    tenant: PdvMerchant,
    session: SessionDep,
    original_key: str | None = Query(None, alias="OriginalKey"),
    body: CancelByKeyIn | None = None,
) -> dict[str, Any]:
    """Cancel a redemption by the ``OriginalKey`` it was made with (query or body)."""
    key = original_key or (body.OriginalKey if body else None)
    if not key:
        raise InvalidInput("OriginalKey is required (query string or body).")
    redemption = redemptions.find_redemption(session, tenant, key=key)
    redemptions.cancel(session, redemption)
    return cancelled_out(session, tenant, redemption)
