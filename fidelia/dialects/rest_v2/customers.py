"""Seed 004 customers: search by CPF, phone, e-mail or your id; register; read one."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from fidelia.customers import directory
from fidelia.customers.profile import parse_birthday
from fidelia.dialects.rest_v2.auth import Merchant
from fidelia.dialects.rest_v2.common import PagingDep, cpf_identifier, customer_out, customers_out
from fidelia.dialects.rest_v2.schemas import CustomerIn, CustomerOut, CustomerPage, ErrorOut
from fidelia.kit.deps import ReadSessionDep, SessionDep
from fidelia.kit.documents import normalize_email
from fidelia.kit.errors import InvalidInput
from fidelia.kit.ids import IdPath
from fidelia.kit.passwords import hash_password
from fidelia.kit.phone import phone_of
from fidelia.models import Tenant

router = APIRouter(tags=["Seed 004: customers"])


def identifiers_in(
    tenant: Tenant,
    *,
    cpf: str | None,
    phone: str | None,
    email: str | None,
    external_id: str | None,
) -> dict[str, str]:
    found: dict[str, str] = {}
    if cpf:
        kind, value = cpf_identifier(cpf)
        found[kind] = value
    if phone:
        found["phone"] = phone_of(tenant, phone)
    if email:
        found["email"] = normalize_email(email)
    if external_id and external_id.strip():
        found["external"] = external_id.strip()
    return found


@router.get("/customers", response_model=CustomerPage)
def list_customers(
    tenant: Merchant,
    session: ReadSessionDep,
    paging: PagingDep,
    cpf: Annotated[str | None, Query(description="CPF, digits or punctuated")] = None,
    phone: Annotated[str | None, Query(description="Matches WhatsApp numbers too")] = None,
    email: str | None = None,
    external_id: str | None = None,
) -> CustomerPage:
    """List customers, filtered by CPF, phone, e-mail or your id (all given must match)."""
    filters = identifiers_in(tenant, cpf=cpf, phone=phone, email=email, external_id=external_id)
    found = directory.search(
        session, tenant.program_id, filters, page=paging.page, per_page=paging.per_page
    )
    return CustomerPage(
        data=customers_out(session, tenant, found.items), meta=paging.meta(found.total)
    )


@router.post(
    "/customers",
    response_model=CustomerOut,
    status_code=201,
    responses={
        200: {"model": CustomerOut, "description": "A customer known from another door, enrolled"},
        409: {"model": ErrorOut, "description": "customer_exists, identifiers_conflict"},
    },
)
def create_customer(
    body: CustomerIn, tenant: Merchant, session: SessionDep, response: Response
) -> CustomerOut:
    """Register a customer (name, phone, password, more); 200 when enrolling one already
    known from another door, such as the WhatsApp bot."""
    identifiers = identifiers_in(
        tenant, cpf=body.cpf, phone=body.phone, email=body.email, external_id=body.external_id
    )
    if not identifiers:
        raise InvalidInput(
            "Give at least one of phone, cpf, email or external_id.", code="IDENTIFIER_REQUIRED"
        )
    customer, created = directory.register(
        session,
        tenant,
        identifiers,
        name=body.name,
        password_hash=hash_password(body.password) if body.password is not None else None,
        birthday=parse_birthday(body.birthday.isoformat()) if body.birthday else None,
    )
    response.status_code = 201 if created else 200
    response.headers["Location"] = f"/v2/customers/{customer.id}"
    return customer_out(session, tenant, customer)


@router.get("/customers/{customer_id}", response_model=CustomerOut)
def get_customer(customer_id: IdPath, tenant: Merchant, session: ReadSessionDep) -> CustomerOut:
    """One customer, with their points and cashback balance."""
    customer = directory.get_in_program(session, tenant.program_id, customer_id)
    return customer_out(session, tenant, customer)
