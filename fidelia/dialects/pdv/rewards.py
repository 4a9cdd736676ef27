"""Seed 001: rewards available to a customer, redeeming one, and cancelling a redemption."""

from typing import Any

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from fidelia.challenges.service import consume_verification
from fidelia.dialects.pdv.auth import PdvMerchant
from fidelia.dialects.pdv.casing import money_in, money_out
from fidelia.dialects.pdv.common import by_document, customer_out, require_customer
from fidelia.dialects.pdv.errors import ERRORS, envelope
from fidelia.dialects.pdv.schemas import (
    AvailableIn,
    AvailableOut,
    CancelByKeyIn,
    Envelope,
    RedeemIn,
    RewardOut,
)
from fidelia.kit.deps import ReadSessionDep, SessionDep
from fidelia.kit.errors import InvalidInput
from fidelia.kit.idempotency import claim
from fidelia.kit.ids import IdPath, as_id
from fidelia.kit.money import format_money
from fidelia.models import Redemption, Reward, Tenant
from fidelia.redemptions import service as redemptions
from fidelia.rewards.eligibility import Offer, evaluate
from fidelia.rewards.service import active_rewards, get_for_tenant

router = APIRouter(prefix="/v1/pvt/POS", tags=["Seed 001: POS rewards"], responses=ERRORS)
REWARD_TYPES = {"percent": 0, "fixed": 1, "cashback": 3, "custom": 4, "product": 5}


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
    return "; ".join(parts)


def reward_out(tenant: Tenant, offer: Offer, available_cashback: int) -> RewardOut:
    reward = offer.reward
    cashback = reward.reward_type == "cashback"
    value = (
        reward.value / 100
        if reward.reward_type == "percent"
        else money_out(reward.value, tenant.currency)
    )
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
    )


@router.post("/rewards/{reward_id}/redeem", response_model=Envelope)
def redeem(
    reward_id: IdPath, body: RedeemIn, tenant: PdvMerchant, session: SessionDep
) -> dict[str, Any]:
    """Redeem a reward once per ``OriginalKey``: a retry replays the first answer."""
    # The fingerprint reads amounts as money, so 5.5 and "5.50" are the same request.
    request = {**body.model_dump(mode="json"), "Value": money_in(body.Value, tenant.currency)}
    keyed = claim(
        session, tenant.id, "pdv.redeem", body.OriginalKey, {"reward": reward_id, **request}
    )
    if keyed.replay is not None:
        return keyed.replay
    customer = require_customer(session, tenant, body.CustomerId)
    reward = get_for_tenant(session, tenant.id, reward_id)
    if tenant.should_validate_customer:
        consume_verification(session, tenant, customer)
    cash_value = money_in(body.Value, tenant.currency) if reward.reward_type == "cashback" else None
    if reward.reward_type == "cashback" and not cash_value:
        raise InvalidInput("A cashback reward needs the Value to use.", code="INVALID_AMOUNT")
    done = redemptions.redeem(
        session,
        tenant,
        customer,
        reward,
        origin="pdv",
        cash_value=cash_value,
        original_key=body.OriginalKey,
    )
    entry = done.points_entry
    answer = envelope(
        {
            "Id": done.redemption.id,  # what DELETE /rewards/{id} takes to cancel it
            "RewardId": reward.id,
            "Point": {
                "PointId": entry.id if entry else None,
                "Quantity": entry.amount if entry else 0,
            },
            "ExternalCode": done.redemption.external_code,
            "OriginalKey": body.OriginalKey,
        }
    )
    keyed.store(answer)
    return answer


def cancelled_out(session: Session, tenant: Tenant, redemption: Redemption) -> dict[str, Any]:
    return envelope(
        {
            "Id": redemption.id,
            "ExternalCode": redemption.external_code,
            "CashValue": money_out(redemption.value, tenant.currency),
            "IsCanceled": redemption.status == "cancelled",
            "RedeemDate": redemption.created_at.isoformat(),
            "Points": {"Quantity": redemption.points},
        }
    )


@router.delete("/rewards/{redemption_ref}", response_model=Envelope)
def cancel_redemption(
    redemption_ref: str, tenant: PdvMerchant, session: SessionDep
) -> dict[str, Any]:
    """Cancel a redemption (its id or ExternalCode) while its order is not complete."""
    number = as_id(redemption_ref)
    if number is not None:
        redemption = redemptions.find_redemption(session, tenant, id=number)
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
