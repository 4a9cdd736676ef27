"""Seed 002's OpenAPI examples: the README's worked example ("Mercado Sol", BRL, 1 point per
R$ 1, a point worth R$ 0,10, 5 % back as credit, a visit worth 5 points, the deal DEAL-1
"Regulars: 15% off bakery" and Ana's voucher WELCOME-10), as Fidelia answers it today.
Every amount is in cents. Answers are built by the door's own ``envelope`` (the fields
beside ``status`` and again under ``data``), refusals by its renderer."""

from typing import Any

from fidelia.challenges.short_codes import NoChannel
from fidelia.dialects.retail_v1.errors import fail, render
from fidelia.dialects.retail_v1.wire import envelope
from fidelia.kit.errors import (
    Conflict,
    DomainError,
    InsufficientPoints,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthorized,
)
from fidelia.kit.examples import Catalog, Example, Operation, Refusal, refused, responses

PHONE = "+5511987654321"
AT = "2026-05-07T14:55:12Z"
HEADERS = {
    "x-source-type": "POS",
    "x-source-name": "Caixa",
    "x-branch-id": "loja-01",
    "x-pos-id": "3",
}
CONSENTS = {
    "allowedSMS": True,
    "allowedEmail": False,
    "allowedWhatsApp": True,
    "termsOfUse": True,
    "gdpr": True,
}


def member(points: int = 0, credit: int = 0, **fields: Any) -> dict[str, Any]:
    """The member as the door answers them (``MemberOut``)."""
    consents = {**CONSENTS, **{k: v for k, v in fields.items() if k in CONSENTS}}
    found = {
        "memberId": "1",
        "phoneNumber": PHONE,
        "email": "ana@example.com",
        "membershipKey": "694563148554",
        "externalId": None,
        "firstName": "Ana",
        "lastName": "Souza",
        "birthday": "1990-05-07",
        **consents,
        "consents": [
            {"type": name, "granted": granted, "updatedOn": AT}
            for name, granted in consents.items()
        ],
        "createdOn": AT,
        "balance": {"points": points, "credit": credit},
        "pointsValue": points * 10,
        "status": "active",
        "points": points,
        "credit": credit,
        "visit": 0,
        "totalSpent": 0,
    }
    found.update({k: v for k, v in fields.items() if k not in CONSENTS})
    return found


def error(
    cls: type[DomainError], message: str, code: str, path: str | None, summary: str
) -> Refusal:
    return refused(render, fail(cls, message, code, path), summary)


def answer(data: dict[str, Any], message: str | None = None) -> dict[str, Any]:
    return envelope(None, data, message=message)


UNAUTHORIZED = error(
    Unauthorized,
    "Invalid, revoked or missing API key.",
    "UNAUTHORIZED",
    "header.x-api-key",
    "x-api-key missing, unknown or revoked",
)
HEADER_MISSING = error(
    DomainError,
    "The x-source-type header is required.",
    "HEADER_MISSING",
    "header.x-source-type",
    "A required header is missing",
)
NOT_A_MEMBER = error(
    InvalidInput,
    "Cannot find any member with the given identifier.",
    "MEMBER_NOT_FOUND",
    "body.member.phoneNumber",
    "No member with this identifier (the guide's code)",
)
RATE_LIMITED = refused(
    render,
    RateLimited("Rate limit of 20 per 1 second exceeded.", retry_after=1),
    "Over the API key's rate limit (see Retry-After)",
)
COMMON = (UNAUTHORIZED, HEADER_MISSING, RATE_LIMITED)
BASKET = {
    "transactionId": "POS3-0001",
    "dateTime": "2026-05-07T15:30:00Z",
    "totalAmount": 20000,
    "items": [
        {
            "lineId": "1",
            "code": "PAO",
            "name": "Pão de fermentação natural",
            "departmentCode": "PADARIA",
            "quantity": 2,
            "netAmount": 4000,
        },
        {
            "lineId": "2",
            "code": "VINHO",
            "name": "Vinho tinto",
            "departmentCode": "BEBIDAS",
            "quantity": 1,
            "netAmount": 16000,
        },
    ],
}
DEAL = {"key": "DEAL-1", "name": "Regulars: 15% off bakery", "type": "percent"}
WELCOME = {"key": "WELCOME-10", "name": "R$ 10,00 off"}
POINTS_LINE = {
    "type": "POINTS",
    "amount": 50,
    "points": 5,
    "confirmationCode": "LP-9ABDC32238FF",
    "linked": False,
}
CASH_LINE = {
    "type": "CASH",
    "amount": 18350,
    "points": None,
    "confirmationCode": None,
    "linked": False,
}
SALE = {
    "transactionId": "POS3-0001",
    "confirmationCode": "TX-1-F56NDX",
    "status": "completed",
    "memberId": "1",
    "totalAmount": 20000,
    "totalDiscount": -1600,
    "amountToPay": 18400,
    "appliedDeals": [{**DEAL, "discountAmount": -600, "bonusPoints": 0}],
    "usedAssets": [{**WELCOME, "discountAmount": -1000, "benefit": "R$ 10,00 off", "usesLeft": 0}],
    "payments": [POINTS_LINE, CASH_LINE],
    "earned": {"points": 183, "credit": 917},
    "newBalance": {"points": 183, "credit": 917},
}
CANCELLED = {
    "transactionId": "POS3-0001",
    "confirmationCode": "TX-1-F56NDX",
    "status": "cancelled",
    "reversed": {"points": 183, "credit": 917},
    "refundedPayments": [POINTS_LINE],
    "releasedAssets": ["WELCOME-10"],
    "newBalance": {"points": 5, "credit": 0},
}
NO_TRANSACTION = error(
    NotFound,
    "No transaction with this confirmation code.",
    "TRANSACTION_NOT_FOUND",
    "body.confirmationCode",
    "No sale with this confirmation code",
)
PAYMENT = {
    "confirmationCode": "LP-B06872645F7E",
    "type": "POINTS",
    "amount": 1000,
    "points": 100,
    "status": "done",
    "transactionId": "POS3-0002",
    "newBalance": {"points": 83, "credit": 917},
}

EXAMPLES: Catalog = {
    ("POST", "/v1/member/register"): Operation(
        params=HEADERS,
        request={
            "member": Example(
                "The guide's shape: the member's fields under member (a national phone "
                "number is read in the merchant's country)",
                {
                    "member": {
                        "phoneNumber": "11 98765-4321",
                        "email": "ana@example.com",
                        "firstName": "Ana",
                        "lastName": "Souza",
                        "birthday": "1990-05-07",
                        **CONSENTS,
                    }
                },
            ),
            "newMemberData": Example(
                "The vendor's reference: the same fields under newMemberData",
                {"newMemberData": {"phoneNumber": PHONE, "firstName": "Ana", "termsOfUse": True}},
            ),
        },
        responses=responses(
            {200: {"registered": Example("Registered", answer({"member": member()}))}},
            error(
                Conflict,
                "A member with this phoneNumber is already registered; use /member/update.",
                "MEMBER_EXISTS",
                "body.member.phoneNumber",
                "Already registered",
            ),
            error(
                InvalidInput,
                "Not a possible phone number: '12'",
                "INVALID_PHONE",
                "body.member.phoneNumber",
                "Not a phone number",
            ),
            *COMMON,
        ),
    ),
    ("POST", "/v1/member/update"): Operation(
        params=HEADERS,
        request={
            "update": Example(
                "member finds her; newMemberData holds what changes",
                {
                    "member": {"phoneNumber": PHONE},
                    "newMemberData": {"lastName": "Souza Lima", "allowedEmail": True},
                },
            )
        },
        responses=responses(
            {
                200: {
                    "updated": Example(
                        "Updated",
                        answer(
                            {
                                "memberId": "1",
                                "member": member(lastName="Souza Lima", allowedEmail=True),
                            },
                            message="Member updated successfully",
                        ),
                    )
                }
            },
            NOT_A_MEMBER,
            *COMMON,
        ),
    ),
    ("POST", "/v1/member/details"): Operation(
        params={**HEADERS, "x-return-assets": "active", "x-return-benefits": "true"},
        request={
            "basket": Example(
                "The member, and the basket to price the deals for",
                {"member": {"phoneNumber": PHONE}, "transaction": BASKET},
            ),
            "member": Example("Just the member", {"member": {"email": "ana@example.com"}}),
        },
        responses=responses(
            {
                200: {
                    "details": Example(
                        "With x-return-assets: active and x-return-benefits: true",
                        answer(
                            {
                                "member": member(5),
                                "assets": [
                                    {
                                        **WELCOME,
                                        "type": "voucher",
                                        "status": "active",
                                        "redeemable": True,
                                        "value": 1000,
                                        "benefit": "R$ 10,00 off",
                                        "campaign": None,
                                        "validFrom": None,
                                        "validUntil": None,
                                        "usesLeft": 1,
                                        "maxUses": 1,
                                    }
                                ],
                                "pagination": {
                                    "page": 1,
                                    "pageSize": 50,
                                    "total": 1,
                                    "hasMore": False,
                                },
                                "benefits": [
                                    {
                                        **DEAL,
                                        "value": 1500,
                                        "discountAmount": -600,
                                        "bonusPoints": 0,
                                        "conditions": {
                                            "minTotal": 0,
                                            "itemCode": None,
                                            "departmentCode": "PADARIA",
                                        },
                                    }
                                ],
                            }
                        ),
                    )
                }
            },
            NOT_A_MEMBER,
            *COMMON,
        ),
    ),
    ("POST", "/v1/member/shortCode"): Operation(
        params=HEADERS,
        request={
            "send": Example(
                "Send a login code (WhatsApp, else SMS, by consent)",
                {"member": {"phoneNumber": PHONE}, "action": "send"},
            ),
            "verify": Example(
                "Check the code the member gives",
                {"member": {"phoneNumber": PHONE}, "action": "verify", "shortCode": "482913"},
            ),
        },
        responses=responses(
            {
                200: {
                    "sent": Example(
                        "Sent by WhatsApp, valid ten minutes",
                        answer(
                            {
                                "action": "send",
                                "sentVia": "whatsapp",
                                "shortCode": None,
                                "expiresOn": "2026-05-07T15:05:12Z",
                                "verified": None,
                            }
                        ),
                    ),
                    "verified": Example(
                        "The code is right",
                        answer(
                            {
                                "action": "verify",
                                "sentVia": None,
                                "shortCode": None,
                                "expiresOn": None,
                                "verified": True,
                            }
                        ),
                    ),
                }
            },
            refused(
                render,
                fail(
                    NoChannel,
                    "The member has no phone number with WhatsApp or SMS consent to send a "
                    "code to.",
                    "NO_CHANNEL",
                    "body.member",
                ),
                "No consented WhatsApp/SMS number",
            ),
            error(
                DomainError,
                "The code is wrong, expired or already used.",
                "SHORT_CODE_INVALID",
                "body.shortCode",
                "Wrong, expired or used code",
            ),
            NOT_A_MEMBER,
            *COMMON,
        ),
    ),
    ("POST", "/v1/member/erase"): Operation(
        params=HEADERS,
        request={"erase": Example("Erase on request (GDPR)", {"member": {"phoneNumber": PHONE}})},
        responses=responses(
            {
                200: {
                    "erased": Example(
                        "Personal data removed; the ledger is kept, anonymous",
                        answer({"memberId": "1", "erasedOn": "2026-05-07T16:10:00Z"}),
                    )
                }
            },
            NOT_A_MEMBER,
            *COMMON,
        ),
    ),
    ("POST", "/v1/transaction"): Operation(
        params=HEADERS,
        request={
            "sale": Example(
                "A sale using deal DEAL-1 and asset WELCOME-10, paid R$ 0,50 in points and "
                "the rest in cash",
                {
                    "member": {"phoneNumber": PHONE},
                    "transaction": {
                        **BASKET,
                        "payments": [
                            {"type": "POINTS", "amount": 50},
                            {"type": "CASH", "amount": 18350},
                        ],
                    },
                    "appliedDeals": [{"key": "DEAL-1"}],
                    "usedAssets": [{"key": "WELCOME-10"}],
                },
            ),
            "cancel": Example(
                "Cancel a sale by its confirmation code (as /transaction/cancel)",
                {"action": "cancel", "confirmationCode": "TX-1-F56NDX"},
            ),
        },
        responses=responses(
            {
                200: {
                    "completed": Example("Recorded: discounts, payments, earnings", answer(SALE)),
                    "cancelled": Example("Cancelled (action: cancel)", answer(CANCELLED)),
                }
            },
            error(
                Conflict,
                "This voucher was already used.",
                "VOUCHER_USED",
                "body.usedAssets[0].key",
                "The asset was already used",
            ),
            error(
                DomainError,
                "transaction.payments[1].amount: amounts are whole numbers in cents (the "
                "currency's minor unit): send 1050 for 10.50, not 183.5",
                "INVALID_AMOUNT",
                "body.transaction.payments[1].amount",
                "An amount that is not whole cents",
            ),
            NOT_A_MEMBER,
            *COMMON,
        ),
    ),
    ("POST", "/v1/transaction/cancel"): Operation(
        params=HEADERS,
        request={
            "cancel": Example(
                "The confirmation code the sale was answered",
                {"confirmationCode": "TX-1-F56NDX"},
            )
        },
        responses=responses(
            {
                200: {
                    "cancelled": Example(
                        "Earnings taken back, loyalty payments refunded, assets released",
                        answer(CANCELLED),
                    )
                }
            },
            NO_TRANSACTION,
            *COMMON,
        ),
    ),
    ("POST", "/v1/payment"): Operation(
        params=HEADERS,
        request={
            "pay": Example(
                "Pay R$ 10,00 with points (a point pays R$ 0,10: 100 points)",
                {
                    "member": {"membershipKey": "694563148554"},
                    "payment": {"action": "pay", "type": "POINTS", "amount": 1000},
                    "transaction": {"transactionId": "POS3-0002"},
                },
            ),
            "cancel": Example(
                "Cancel a loyalty payment by its confirmation code",
                {"payment": {"action": "cancel", "confirmationCode": "LP-B06872645F7E"}},
            ),
        },
        responses=responses(
            {
                200: {
                    "paid": Example("Paid", answer(PAYMENT)),
                    "cancelled": Example(
                        "Cancelled: the points are back",
                        answer(
                            {
                                **PAYMENT,
                                "status": "cancelled",
                                "newBalance": {"points": 183, "credit": 917},
                            }
                        ),
                    ),
                }
            },
            refused(
                render,
                fail(
                    InsufficientPoints,
                    "Insufficient points balance.",
                    "INSUFFICIENT_POINTS",
                    "body.payment.amount",
                ),
                "Not enough points (the guide's code 407)",
            ),
            error(
                NotFound,
                "No payment with this confirmation code.",
                "PAYMENT_NOT_FOUND",
                "body.payment.confirmationCode",
                "No payment with this confirmation code",
            ),
            NOT_A_MEMBER,
            *COMMON,
        ),
    ),
    ("POST", "/v1/event"): Operation(
        params=HEADERS,
        request={
            "visit": Example(
                "A visit (the merchant's rule gives 5 points, once a day)",
                {
                    "member": {"email": "ana@example.com"},
                    "event": {
                        "type": "visit",
                        "subType": "store",
                        "dateTime": "2026-05-07T15:00:00Z",
                        "tags": ["loja-01"],
                    },
                },
            )
        },
        responses=responses(
            {
                200: {
                    "recorded": Example(
                        "Recorded, with the points it earned",
                        answer({"eventId": "1", "type": "visit", "pointsEarned": 5}),
                    )
                }
            },
            error(
                InvalidInput,
                "event.type is lower-case letters, digits, '_', '.', '-' (visit, signup, ...).",
                "INVALID_EVENT",
                "body.event.type",
                "Not a valid event type",
            ),
            NOT_A_MEMBER,
            *COMMON,
        ),
    ),
}
