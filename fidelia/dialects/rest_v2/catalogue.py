"""Seed 004 coupons (the merchant's rewards) with their stock, and categories."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from fidelia.categories import service as categories
from fidelia.dialects.rest_v2 import keys
from fidelia.dialects.rest_v2.auth import Merchant
from fidelia.dialects.rest_v2.common import PagingDep, category_out, coupon_out, one_of, only
from fidelia.dialects.rest_v2.schemas import (
    CategoryIn,
    CategoryOut,
    CategoryPage,
    CouponOut,
    CouponPage,
    ErrorOut,
    StockIn,
)
from fidelia.kit.deps import ReadSessionDep, SessionDep
from fidelia.kit.errors import InvalidInput
from fidelia.kit.ids import MAX_ID, IdPath
from fidelia.rewards import service as rewards

router = APIRouter()


@router.get("/coupons", response_model=CouponPage, tags=["Seed 004: coupons"])
def list_coupons(
    tenant: Merchant,
    _known: Annotated[None, only("category_id", "category", "available", "in_stock")],
    session: ReadSessionDep,
    paging: PagingDep,
    category_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="(also: category)")
    ] = None,
    available: Annotated[
        bool | None,
        Query(
            description="true: only those with stock left (or no limit); false: sold out "
            "(also: in_stock)"
        ),
    ] = None,
    category: Annotated[int | None, Query(ge=1, le=MAX_ID, include_in_schema=False)] = None,
    in_stock: Annotated[bool | None, Query(include_in_schema=False)] = None,
) -> CouponPage:
    """List the merchant's coupons (rewards), with their stock."""
    found = rewards.listing(
        session,
        tenant,
        category_id=one_of(category_id=category_id, category=category),
        in_stock=one_of(available=available, in_stock=in_stock),
        page=paging.page,
        per_page=paging.per_page,
    )
    return CouponPage(
        data=[coupon_out(tenant, r) for r in found.items], meta=paging.meta(found.total)
    )


@router.get("/coupons/{coupon_id}", response_model=CouponOut, tags=["Seed 004: coupons"])
def get_coupon(coupon_id: IdPath, tenant: Merchant, session: ReadSessionDep) -> CouponOut:
    """One coupon."""
    return coupon_out(tenant, rewards.get_for_tenant(session, tenant.id, coupon_id))


_STOCK: dict[str, Any] = {
    "response_model": CouponOut,
    "tags": ["Seed 004: coupons"],
    "responses": {
        404: {"model": ErrorOut, "description": "coupon_not_found"},
        409: {"model": ErrorOut, "description": "insufficient_stock, stock_not_tracked"},
    },
}


@router.patch("/coupons/{coupon_id}/stock", **_STOCK)
@router.put("/coupons/{coupon_id}/stock", summary="Update Stock (same as PATCH)", **_STOCK)
def update_stock(
    coupon_id: IdPath,
    body: StockIn,
    request: Request,
    tenant: Merchant,
    session: SessionDep,
    idempotency_key: keys.IdempotencyKey = None,
) -> Any:
    """Set the stock (``{"stock": N}``, null for no limit) or adjust it (``{"adjust": -1}``);
    an adjustment that would go below zero is refused (409), also under concurrency. PATCH
    and PUT do the same."""
    given = body.model_fields_set & {"stock", "adjust"}
    if len(given) != 1:
        raise InvalidInput("Give either stock or adjust.", code="INVALID_REQUEST")
    keyed = keys.begin(
        session, tenant, idempotency_key, request, body.model_dump(mode="json", include=given)
    )
    if (replay := keyed.replay) is not None:
        return replay
    reward = rewards.get_for_tenant(session, tenant.id, coupon_id)
    if "stock" in given:
        rewards.set_stock(session, reward, body.stock)
    else:
        if body.adjust is None:
            raise InvalidInput("adjust is a whole number of units.", code="INVALID_REQUEST")
        rewards.adjust_stock(session, reward, body.adjust)
    return keyed.answer(coupon_out(tenant, reward))


@router.get("/categories", response_model=CategoryPage, tags=["Seed 004: categories"])
def list_categories(
    tenant: Merchant,
    _known: Annotated[None, only()],
    session: ReadSessionDep,
    paging: PagingDep,
) -> CategoryPage:
    """List the merchant's categories."""
    found = categories.listing(session, tenant, page=paging.page, per_page=paging.per_page)
    return CategoryPage(data=[category_out(c) for c in found.items], meta=paging.meta(found.total))


@router.post(
    "/categories",
    response_model=CategoryOut,
    status_code=201,
    tags=["Seed 004: categories"],
    responses={409: {"model": ErrorOut, "description": "category_exists"}},
)
def create_category(
    body: CategoryIn,
    request: Request,
    tenant: Merchant,
    session: SessionDep,
    idempotency_key: keys.IdempotencyKey = None,
) -> Any:
    """Create a category (names are unique per merchant)."""
    keyed = keys.begin(session, tenant, idempotency_key, request, body.model_dump(mode="json"))
    if (replay := keyed.replay) is not None:
        return replay
    category = categories.create_category(
        session, tenant, name=body.name, description=body.description
    )
    return keyed.answer(category_out(category), 201)
