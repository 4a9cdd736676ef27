"""Seed 004 customers: search by CPF, phone, e-mail, your id or ours; register; read one;
update one ("keep the customer synchronized")."""

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from fidelia.customers import directory
from fidelia.customers.profile import parse_birthday
from fidelia.dialects.rest_v2 import keys
from fidelia.dialects.rest_v2.auth import Merchant
from fidelia.dialects.rest_v2.common import (
    PagingDep,
    cpf_identifier,
    customer_out,
    customers_out,
    filters_given,
    one_of,
    only,
)
from fidelia.dialects.rest_v2.schemas import (
    CustomerIn,
    CustomerOut,
    CustomerPage,
    CustomerPatch,
    ErrorOut,
)
from fidelia.kit.deps import ReadSessionDep, SessionDep
from fidelia.kit.documents import normalize_email
from fidelia.kit.errors import InvalidInput
from fidelia.kit.ids import MAX_ID, IdPath
from fidelia.kit.phone import phone_of
from fidelia.models import Tenant

router = APIRouter(tags=["Seed 004: customers"])

FILTERS = (
    ("cpf", "document", "cpf_cnpj"),
    ("phone", "phone_number", "cellphone", "mobile"),
    ("email", "mail"),
    ("external_id",),
    ("id", "customer_id"),
)
Hidden = Annotated[str | None, Query(include_in_schema=False)]
HiddenId = Annotated[int | None, Query(ge=1, le=MAX_ID, include_in_schema=False)]


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
    request: Request,
    tenant: Merchant,
    _known: Annotated[None, only(*(name for names in FILTERS for name in names))],
    session: ReadSessionDep,
    paging: PagingDep,
    cpf: Annotated[
        str | None, Query(description="CPF, digits or punctuated (also: document)")
    ] = None,
    phone: Annotated[
        str | None, Query(description="Matches WhatsApp numbers too (also: phone_number)")
    ] = None,
    email: Annotated[str | None, Query(description="(also: mail)")] = None,
    external_id: str | None = None,
    id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Our customer id")] = None,
    document: Hidden = None,
    cpf_cnpj: Hidden = None,
    phone_number: Hidden = None,
    cellphone: Hidden = None,
    mobile: Hidden = None,
    mail: Hidden = None,
    customer_id: HiddenId = None,
) -> CustomerPage:
    """List customers, filtered by CPF, phone, e-mail, your id or ours (all given must
    match); unknown parameters are refused (422), never ignored."""
    filters_given(request, *(name for names in FILTERS for name in names))
    filters = identifiers_in(
        tenant,
        cpf=one_of(cpf=cpf, document=document, cpf_cnpj=cpf_cnpj),
        phone=one_of(phone=phone, phone_number=phone_number, cellphone=cellphone, mobile=mobile),
        email=one_of(email=email, mail=mail),
        external_id=external_id,
    )
    found = directory.search(
        session,
        tenant.program_id,
        filters,
        customer_id=one_of(id=id, customer_id=customer_id),
        page=paging.page,
        per_page=paging.per_page,
    )
    return CustomerPage(
        data=customers_out(session, tenant, found.items), meta=paging.meta(found.total)
    )


@router.post(
    "/customers",
    response_model=CustomerOut,
    status_code=201,
    responses={
        200: {
            "model": CustomerOut,
            "description": "Already on file (known from another door, or registered before) "
            "and what was sent matches it or only fills blanks",
        },
        409: {
            "model": ErrorOut,
            "description": "customer_exists (on file with other data: nothing written), "
            "identifiers_conflict",
        },
    },
)
def create_customer(
    body: CustomerIn,
    request: Request,
    tenant: Merchant,
    session: SessionDep,
    response: Response,
    idempotency_key: keys.IdempotencyKey = None,
) -> Any:
    """Register a customer (name, phone, password, more). A customer already on file is
    never changed by a registration: 200 with them when what is sent matches or only adds,
    409 ``customer_exists`` when it differs (use PATCH)."""
    keyed = keys.begin(session, tenant, idempotency_key, request, body.model_dump(mode="json"))
    if (replay := keyed.replay) is not None:
        assert keyed.claim is not None and keyed.claim.replay is not None
        replay.headers["Location"] = f"/v2/customers/{keyed.claim.replay['id']}"
        return replay
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
        password=body.password,
        birthday=_birthday(body.birthday),
    )
    response.status_code = 201 if created else 200
    response.headers["Location"] = f"/v2/customers/{customer.id}"
    return keyed.answer(customer_out(session, tenant, customer), response.status_code)


def _birthday(value: date | None) -> date | None:
    """The engine's range check (not in the future, not before 1900)."""
    return parse_birthday(value.isoformat()) if value else None


@router.get("/customers/{customer_id}", response_model=CustomerOut)
def get_customer(customer_id: IdPath, tenant: Merchant, session: ReadSessionDep) -> CustomerOut:
    """One customer, with their points and cashback balance."""
    customer = directory.get_in_program(session, tenant.program_id, customer_id)
    return customer_out(session, tenant, customer)


@router.patch(
    "/customers/{customer_id}",
    response_model=CustomerOut,
    responses={
        404: {"model": ErrorOut, "description": "customer_not_found"},
        409: {"model": ErrorOut, "description": "identifiers_conflict"},
    },
)
@router.put(
    "/customers/{customer_id}",
    response_model=CustomerOut,
    summary="Update Customer (same as PATCH)",
    responses={
        404: {"model": ErrorOut, "description": "customer_not_found"},
        409: {"model": ErrorOut, "description": "identifiers_conflict"},
    },
)
def update_customer(
    customer_id: IdPath,
    body: CustomerPatch,
    request: Request,
    tenant: Merchant,
    session: SessionDep,
    idempotency_key: keys.IdempotencyKey = None,
) -> Any:
    """Update a customer: only the fields sent change (PUT does the same); null removes a
    value; a phone replaces the numbers given by systems, never the WhatsApp number."""
    given = body.model_fields_set
    keyed = keys.begin(
        session, tenant, idempotency_key, request, body.model_dump(mode="json", include=given)
    )
    if (replay := keyed.replay) is not None:
        return replay
    customer = directory.get_in_program(session, tenant.program_id, customer_id)
    changes: dict[str, Any] = {}
    if "name" in given:
        changes["name"] = body.name
    if "birthday" in given:
        changes["birthday"] = _birthday(body.birthday)
    if "password" in given:
        changes["password"] = body.password
    identifiers: dict[str, str | None] = {}
    for field, kind in (("phone", "phone"), ("email", "email"), ("external_id", "external")):
        if field in given:
            value = getattr(body, field)
            found = identifiers_in(tenant, **{**_NONE, field: value}) if value else {}
            identifiers[kind] = found.get(kind)
    if "cpf" in given:
        if body.cpf:
            kind, value = cpf_identifier(body.cpf)
            identifiers[kind] = value
        else:
            identifiers["cpf"] = None
    directory.update(session, customer, identifiers=identifiers, **changes)
    return keyed.answer(customer_out(session, tenant, customer))


_NONE: dict[str, Any] = {"cpf": None, "phone": None, "email": None, "external_id": None}
