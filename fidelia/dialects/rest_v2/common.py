"""What the seed 004 routes share: pagination, money out, rendering engine objects."""

from decimal import Decimal
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request
from sqlalchemy.orm import Session

from fidelia.customers.directory import balances_by_customer, identifiers_by_customer
from fidelia.dialects.rest_v2.schemas import (
    Balance,
    CategoryOut,
    CouponOut,
    CustomerOut,
    Meta,
    VoucherOut,
)
from fidelia.kit.documents import identify_document
from fidelia.kit.errors import InvalidInput
from fidelia.kit.money import from_minor
from fidelia.ledger.service import CASHBACK, POINTS
from fidelia.models import Category, Customer, Reward, Tenant, Voucher
from fidelia.vouchers.service import state_of

MAX_PER_PAGE = 100
T = TypeVar("T")


PER_PAGE_ALIASES = ("limit", "page_size")
PAGING = ("page", "per_page", *PER_PAGE_ALIASES)


class Paging:
    def __init__(
        self,
        page: Annotated[int, Query(ge=1, le=100_000, description="1-based")] = 1,
        per_page: Annotated[
            int | None, Query(ge=1, le=MAX_PER_PAGE, description="20 if not given (also: limit)")
        ] = None,
        limit: Annotated[int | None, Query(ge=1, le=MAX_PER_PAGE, include_in_schema=False)] = None,
        page_size: Annotated[
            int | None, Query(ge=1, le=MAX_PER_PAGE, include_in_schema=False)
        ] = None,
    ) -> None:
        self.page = page
        self.per_page = one_of(per_page=per_page, limit=limit, page_size=page_size) or 20

    def meta(self, total: int) -> Meta:
        return Meta(
            page=self.page,
            per_page=self.per_page,
            total=total,
            total_pages=-(-total // self.per_page),
        )


def one_of(**given: T | None) -> T | None:
    """The value of a parameter sent under one of its names; names that disagree: 422."""
    values = {name: value for name, value in given.items() if value is not None}
    if len(set(values.values())) > 1:
        raise InvalidInput(" and ".join(values) + " disagree; send one.", code="INVALID_REQUEST")
    return next(iter(values.values()), None)


def only(*names: str) -> Any:
    """A dependency refusing query parameters the list does not know (422
    ``unknown_parameter``), and a parameter repeated with different values: a filter that
    was silently ignored would list everyone, and a client taking the first one would
    credit the wrong person."""
    known = (*names, *PAGING)

    def check(request: Request) -> None:
        params = request.query_params
        unknown = sorted({name for name in params if name not in known})
        if unknown:
            raise InvalidInput(
                f"Unknown query parameter{'s' if len(unknown) > 1 else ''}: "
                f"{', '.join(unknown)}. This list takes: {', '.join(known)}.",
                code="UNKNOWN_PARAMETER",
            )
        for name in set(params):
            if len(set(params.getlist(name))) > 1:
                raise InvalidInput(
                    f"{name} is given more than once with different values.",
                    code="INVALID_REQUEST",
                )

    return Depends(check)


def filters_given(request: Request, *names: str) -> None:
    """Filters sent, all empty (``?cpf=``): refused rather than listing everyone."""
    sent = [name for name in names if name in request.query_params]
    if sent and not any(request.query_params[name].strip() for name in sent):
        raise InvalidInput(
            f"Empty filter{'s' if len(sent) > 1 else ''}: {', '.join(sent)}. Leave "
            f"{'them' if len(sent) > 1 else 'it'} out to list everything.",
            code="EMPTY_FILTER",
        )


PagingDep = Annotated[Paging, Depends()]


def cpf_identifier(raw: str) -> tuple[str, str]:
    """A CPF (check digits validated); a CNPJ is accepted for companies."""
    kind, value = identify_document(raw)
    if kind == "email":
        raise InvalidInput(f"Not a CPF: {raw!r}", code="INVALID_DOCUMENT")
    return kind, value


def money(minor: int, currency: str) -> str:
    """1050 BRL -> "10.50": exact, and parsed the same by every JSON client."""
    return f"{from_minor(minor, currency):f}"


def balance_out(tenant: Tenant, amounts: dict[str, int]) -> Balance:
    return Balance(
        points=amounts.get(POINTS, 0),
        cashback=money(amounts.get(CASHBACK, 0), tenant.currency),
        currency=tenant.currency,
    )


def customers_out(session: Session, tenant: Tenant, customers: list[Customer]) -> list[CustomerOut]:
    """A page of customers in three queries (customers, identifiers, balances)."""
    ids = [c.id for c in customers]
    identifiers = identifiers_by_customer(session, ids)
    balances = balances_by_customer(session, tenant.program_id, ids)
    out = []
    for customer in customers:
        found = identifiers[customer.id]
        out.append(
            CustomerOut(
                id=customer.id,
                name=customer.name,
                cpf=found.get("cpf"),
                phone=found.get("phone") or found.get("whatsapp"),
                email=found.get("email"),
                external_id=found.get("external"),
                birthday=customer.birthday,
                birth_date=customer.birthday,
                balance=balance_out(tenant, balances[customer.id]),
                created_at=customer.created_at,
            )
        )
    return out


def customer_out(session: Session, tenant: Tenant, customer: Customer) -> CustomerOut:
    return customers_out(session, tenant, [customer])[0]


def coupon_out(tenant: Tenant, reward: Reward) -> CouponOut:
    if reward.reward_type == "percent":
        value = f"{Decimal(reward.value).scaleb(-2):f}"  # basis points -> percent
    else:
        value = money(reward.value, tenant.currency)
    return CouponOut(
        id=reward.id,
        title=reward.title,
        description=reward.description,
        type=reward.reward_type,
        points_required=reward.points_required,
        value=value,
        min_purchase=money(reward.min_purchase, tenant.currency),
        stock=reward.stock,
        category_id=reward.category_id,
        created_at=reward.created_at,
    )


def category_out(category: Category) -> CategoryOut:
    return CategoryOut(
        id=category.id,
        name=category.name,
        description=category.description,
        created_at=category.created_at,
    )


def voucher_out(tenant: Tenant, voucher: Voucher) -> VoucherOut:
    return VoucherOut(
        id=voucher.id,
        code=voucher.code,
        customer_id=voucher.customer_id,
        campaign=voucher.campaign,
        kind=voucher.kind,
        value=money(voucher.value, tenant.currency),
        currency=tenant.currency,
        benefit=voucher.benefit,
        valid_from=voucher.valid_from,
        valid_until=voucher.valid_until,
        max_uses=voucher.max_uses,
        uses=voucher.uses,
        status=state_of(voucher),
        created_at=voucher.created_at,
    )
