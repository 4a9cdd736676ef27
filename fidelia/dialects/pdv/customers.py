"""Seed 001: the identity challenge (a code by SMS and/or e-mail) and its validation.
These answers are bare objects, without the envelope."""

import secrets

from fastapi import APIRouter

from fidelia.challenges import service as challenges
from fidelia.customers.service import link_identifier
from fidelia.dialects.pdv.auth import PdvMerchant
from fidelia.dialects.pdv.common import identifiers_of, require_customer
from fidelia.dialects.pdv.errors import BARE_ERRORS
from fidelia.dialects.pdv.schemas import (
    ChallengeIn,
    ChallengeOut,
    ChallengeValidateIn,
    ChallengeValidateOut,
)
from fidelia.kit.deps import SessionDep
from fidelia.kit.documents import normalize_email
from fidelia.kit.errors import Conflict
from fidelia.kit.phone import phone_of
from fidelia.state import AppState

router = APIRouter(
    prefix="/v1/pvt/POS/customers", tags=["Seed 001: POS rewards"], responses=BARE_ERRORS
)


@router.post("/{document}/challenge", response_model=ChallengeOut)
def challenge(
    document: str, body: ChallengeIn, tenant: PdvMerchant, session: SessionDep, state: AppState
) -> ChallengeOut:
    """Send a 6-digit code by SMS and/or e-mail (the POS gives a contact when none is on file)."""
    customer = require_customer(session, tenant, document)
    # The vendor's reference lets the POS leave it null; the answer carries the one to validate.
    transaction = body.TransactionId or f"FD-{secrets.token_hex(8)}"
    # Sends are limited per customer in the database (challenges.service.SEND_LIMITS).
    on_file = identifiers_of(session, customer)
    phone = on_file.get("phone") or on_file.get("whatsapp")
    email = on_file.get("email")
    if not phone and body.Phone:
        phone = phone_of(tenant, body.Phone)
        if not link_identifier(session, customer, "phone", phone):
            raise Conflict("This phone belongs to another customer.", code="CONTACT_TAKEN")
    if not email and body.Email:
        email = normalize_email(body.Email)
        if not link_identifier(session, customer, "email", email):
            raise Conflict("This e-mail belongs to another customer.", code="CONTACT_TAKEN")
    if not phone and not email:
        return ChallengeOut(
            Success=False,
            FriendlyErrorMessage="Informe um telefone ou e-mail do cliente para enviar o código.",
            ShouldInformPhone=True,
            ShouldInformEmail=True,
            TransactionId=transaction,
        )
    sent = challenges.start(
        session,
        tenant,
        customer,
        transaction,
        phone=phone,
        email=email,
        secret_key=state.settings.secret_key,
    )
    return ChallengeOut(
        Success=True,
        SentBySMS=bool(phone),
        SentByEmail=bool(email),
        TransactionId=transaction,
        Code=sent.code if tenant.sandbox else None,
    )


@router.post("/{document}/challengevalidate", response_model=ChallengeValidateOut)
def challenge_validate(
    document: str,
    body: ChallengeValidateIn,
    tenant: PdvMerchant,
    session: SessionDep,
    state: AppState,
) -> ChallengeValidateOut:
    """Check the code the customer read out; single-use, 60 minutes, 5 wrong tries at most."""
    customer = require_customer(session, tenant, document)
    ok = challenges.validate(
        session, tenant, customer, body.TransactionId, body.Code, state.settings.secret_key
    )
    return ChallengeValidateOut(
        TransactionId=body.TransactionId,
        Success=ok,
        FriendlyErrorMessage=None
        if ok
        else "Código inválido ou expirado. Solicite um novo código.",
    )
