"""Seed 004's OpenAPI examples, as Fidelia answers them today: a BRL merchant (1 point per
R$ 1, 5 % cashback), the guide's flow (token, customer, sale, coupons, vouchers,
categories) for Ana Souza, CPF 529.982.247-25. Money goes out as decimal strings
("150.00") and comes in as a decimal string or a JSON number. Refusals are rendered by the
door's own renderer."""

from typing import Any

from fidelia.dialects.rest_v2.errors import render
from fidelia.kit.errors import Conflict, InvalidInput, NotFound, RateLimited, Unauthorized
from fidelia.kit.examples import Catalog, Example, Operation, refused, responses
from fidelia.vouchers.service import VoucherExpired

CPF = "52998224725"
CREATED = "2026-05-07T18:20:41.110661Z"
API_TOKEN = "ftk_KxngSh_sLHVe2mIl"
API_KEY = "fk_live_uxIT1s_UdKfgoz97B3FNnoqb2zry3y0K"


def customer(**fields: Any) -> dict[str, Any]:
    return {
        "id": 1,
        "name": "Ana Souza",
        "cpf": CPF,
        "phone": "+5511987654321",
        "email": "ana.souza@example.com",
        "external_id": "CRM-1001",
        "birthday": "1990-05-07",
        "birth_date": "1990-05-07",
        "balance": {"points": 0, "cashback": "0.00", "currency": "BRL"},
        "created_at": CREATED,
        **fields,
    }


def page(*items: dict[str, Any]) -> dict[str, Any]:
    meta = {"page": 1, "per_page": 20, "total": len(items), "total_pages": 1 if items else 0}
    return {"data": list(items), "meta": meta}


COUPON = {
    "id": 1,
    "title": "R$ 10 de desconto",
    "description": "R$ 10,00 off na próxima compra",
    "type": "fixed",
    "points_required": 100,
    "value": "10.00",
    "min_purchase": "0.00",
    "stock": 25,
    "category_id": 1,
    "created_at": "2026-05-07T18:25:02.289495Z",
}
VOUCHER = {
    "id": 1,
    "code": "BEMVINDO10",
    "customer_id": 1,
    "campaign": "Boas-vindas",
    "kind": "voucher",
    "value": "10.00",
    "currency": "BRL",
    "benefit": "R$ 10,00 off",
    "valid_from": None,
    "valid_until": "2026-08-31T23:59:59Z",
    "max_uses": 1,
    "uses": 0,
    "status": "active",
    "created_at": "2026-05-07T18:26:11.289965Z",
}
CATEGORY = {
    "id": 1,
    "name": "Bebidas",
    "description": "Cafés, sucos e refrigerantes",
    "created_at": "2026-05-07T18:24:26.279167Z",
}
INVALID_TOKEN = refused(
    render,
    Unauthorized("Invalid, expired or revoked access token.", code="INVALID_TOKEN"),
    "No, expired or revoked Bearer token (WWW-Authenticate: Bearer)",
)
RATE_LIMITED = refused(
    render,
    RateLimited("Rate limit of 20 per 1 second exceeded.", retry_after=1),
    "Over the credential's rate limit (see Retry-After)",
)
COMMON = (INVALID_TOKEN, RATE_LIMITED)
CUSTOMER_NOT_FOUND = refused(
    render,
    NotFound("No customer 1 at this merchant.", code="CUSTOMER_NOT_FOUND"),
    "No such customer at this merchant",
)
COUPON_NOT_FOUND = refused(
    render,
    NotFound("No reward 1 at this merchant.", code="REWARD_NOT_FOUND"),
    "No such coupon at this merchant",
)
INVALID_REQUEST = refused(
    render,
    InvalidInput("Invalid request: name: Field required", code="BAD_REQUEST"),
    "A required field is missing or has the wrong type",
)
NEW_CUSTOMER = {
    "name": "Ana Souza",
    "phone": "11987654321",
    "cpf": CPF,
    "email": "ana.souza@example.com",
    "password": "s3nha-segura",
    "birthday": "1990-05-07",
    "external_id": "CRM-1001",
}
UPDATE = {
    "email": "ana@example.com",
    "phone": "+5511912345678",
}
UPDATED = customer(email="ana@example.com", phone="+5511912345678")
UPDATE_REFUSALS = (
    CUSTOMER_NOT_FOUND,
    refused(
        render,
        Conflict("This email belongs to customer 2.", code="IDENTIFIERS_CONFLICT"),
        "The identifier belongs to another customer",
    ),
    *COMMON,
)
STOCK_REFUSALS = (
    COUPON_NOT_FOUND,
    refused(
        render,
        Conflict("Not enough stock: 20 left, adjustment -100.", code="OUT_OF_STOCK"),
        "The adjustment would go below zero",
    ),
    *COMMON,
)
VALIDATED = {**VOUCHER, "uses": 1, "status": "used"}
GIFT = {
    **VALIDATED,
    "id": 2,
    "code": "PRESENTE25",
    "campaign": "Aniversário",
    "kind": "birthday",
    "value": "25.00",
    "benefit": "R$ 25,00 off",
    "created_at": "2026-05-07T18:26:12.104211Z",
}
VALIDATE_REFUSALS = (
    refused(
        render,
        NotFound("No voucher with this code at this merchant.", code="VOUCHER_NOT_FOUND"),
        "No voucher with this code",
    ),
    refused(
        render,
        Conflict("This voucher was already used.", code="VOUCHER_USED"),
        "Already used",
    ),
    refused(render, VoucherExpired("This voucher has expired."), "Expired"),
    *COMMON,
)

EXAMPLES: Catalog = {
    ("POST", "/v2/auth/token"): Operation(
        request={
            "credentials": Example(
                "The two values `fidelia apikey create` prints (either order)",
                {"api_key": API_TOKEN, "api_secret": API_KEY},
            )
        },
        responses=responses(
            {
                200: {
                    "token": Example(
                        "A Bearer token valid an hour",
                        {
                            "access_token": "fat_ialAYa7pfYVZ6DBpdje_R7POUjneQlYUBdZaBgtbedA",
                            "token_type": "Bearer",
                            "expires_in": 3600,
                            "expires_at": "2026-05-07T19:20:24.935376Z",
                        },
                    )
                }
            },
            refused(
                render,
                Unauthorized(
                    "Wrong api_secret: the API key (fk_live_...) sent is not the one issued "
                    "with the API token in api_key.",
                    code="INVALID_CREDENTIALS",
                ),
                "Unknown, revoked or mismatched credentials",
            ),
            refused(
                render,
                InvalidInput(
                    'Send api_key and api_secret (JSON: {"api_key": "ftk_...", "api_secret": '
                    '"fk_live_..."}; either order is accepted).'
                ),
                "A value is missing",
            ),
            RATE_LIMITED,
        ),
    ),
    ("DELETE", "/v2/auth/token"): Operation(responses=responses({}, INVALID_TOKEN)),
    ("GET", "/v2/customers"): Operation(
        params={"cpf": CPF},
        responses=responses(
            {200: {"found": Example("Customers with this CPF (one page)", page(customer()))}},
            refused(
                render,
                InvalidInput(
                    "Unknown query parameter: document_number. This list takes: cpf, document, "
                    "cpf_cnpj, phone, phone_number, cellphone, mobile, email, mail, external_id, "
                    "id, customer_id, page, per_page, limit, page_size.",
                    code="UNKNOWN_PARAMETER",
                ),
                "A query parameter the list does not know (never ignored)",
            ),
            *COMMON,
        ),
    ),
    ("POST", "/v2/customers"): Operation(
        request={"customer": Example("Name, phone, password and more", NEW_CUSTOMER)},
        responses=responses(
            {
                201: {"created": Example("Registered (Location: /v2/customers/1)", customer())},
                200: {
                    "on_file": Example(
                        "Already on file and what was sent matches: nothing changed",
                        customer(),
                    )
                },
            },
            refused(
                render,
                Conflict(
                    "Customer 1 already exists with another name on file; a registration never "
                    "changes a customer (nothing was written). Update customer 1 instead.",
                    code="CUSTOMER_EXISTS",
                ),
                "On file with other data: use PATCH",
            ),
            INVALID_REQUEST,
            *COMMON,
        ),
    ),
    ("GET", "/v2/customers/{customer_id}"): Operation(
        params={"customer_id": 1},
        responses=responses(
            {
                200: {
                    "customer": Example(
                        "With the balance after a R$ 150,00 sale",
                        customer(balance={"points": 150, "cashback": "7.50", "currency": "BRL"}),
                    )
                }
            },
            CUSTOMER_NOT_FOUND,
            *COMMON,
        ),
    ),
    ("PUT", "/v2/customers/{customer_id}"): Operation(
        params={"customer_id": 1},
        request={"update": Example("Only the fields sent change (as PATCH)", UPDATE)},
        responses=responses({200: {"updated": Example("Updated", UPDATED)}}, *UPDATE_REFUSALS),
    ),
    ("PATCH", "/v2/customers/{customer_id}"): Operation(
        params={"customer_id": 1},
        request={
            "update": Example("Only the fields sent change", UPDATE),
            "remove": Example("null removes a value", {"external_id": None}),
        },
        responses=responses({200: {"updated": Example("Updated", UPDATED)}}, *UPDATE_REFUSALS),
    ),
    ("POST", "/v2/sales"): Operation(
        request={
            "by_cpf": Example(
                "By CPF (a CPF seen for the first time enrols its customer); the same "
                "external_id again replays the answer",
                {
                    "cpf": CPF,
                    "sale_amount": "150.00",
                    "external_id": "VENDA-2026-0001",
                    "sold_at": "2026-05-07T15:30:00-03:00",
                },
            ),
            "by_customer_id": Example(
                "By customer_id, the amount as a JSON number",
                {"customer_id": 1, "sale_amount": 150},
            ),
        },
        responses=responses(
            {
                201: {
                    "sale": Example(
                        "What the sale earned and the new balance",
                        {
                            "id": 1,
                            "external_id": "VENDA-2026-0001",
                            "customer_id": 1,
                            "sale_amount": "150.00",
                            "currency": "BRL",
                            "status": "completed",
                            "earned": {"points": 150, "cashback": "7.50"},
                            "balance": {"points": 150, "cashback": "7.50", "currency": "BRL"},
                            "sold_at": "2026-05-07T18:30:00Z",
                            "created_at": "2026-05-07T18:30:02.255349Z",
                        },
                    )
                }
            },
            refused(
                render,
                InvalidInput("Too many decimals for BRL: '150.005'", code="INVALID_AMOUNT"),
                "More decimals than the currency has",
            ),
            CUSTOMER_NOT_FOUND,
            *COMMON,
        ),
    ),
    ("GET", "/v2/coupons"): Operation(
        responses=responses(
            {200: {"coupons": Example("The merchant's coupons with their stock", page(COUPON))}},
            *COMMON,
        ),
    ),
    ("GET", "/v2/coupons/{coupon_id}"): Operation(
        params={"coupon_id": 1},
        responses=responses(
            {200: {"coupon": Example("One coupon", COUPON)}}, COUPON_NOT_FOUND, *COMMON
        ),
    ),
    ("PUT", "/v2/coupons/{coupon_id}/stock"): Operation(
        params={"coupon_id": 1},
        request={"set": Example("Set the units left (null: no limit)", {"stock": 20})},
        responses=responses(
            {200: {"coupon": Example("The coupon with its new stock", {**COUPON, "stock": 20})}},
            *STOCK_REFUSALS,
        ),
    ),
    ("PATCH", "/v2/coupons/{coupon_id}/stock"): Operation(
        params={"coupon_id": 1},
        request={
            "adjust": Example("Take one unit (refused below zero)", {"adjust": -1}),
            "set": Example("Set the units left", {"stock": 20}),
        },
        responses=responses(
            {200: {"coupon": Example("The coupon with its new stock", {**COUPON, "stock": 24})}},
            *STOCK_REFUSALS,
        ),
    ),
    ("GET", "/v2/categories"): Operation(
        responses=responses({200: {"categories": Example("Categories", page(CATEGORY))}}, *COMMON),
    ),
    ("POST", "/v2/categories"): Operation(
        request={
            "category": Example(
                "A category", {"name": "Bebidas", "description": "Cafés, sucos e refrigerantes"}
            )
        },
        responses=responses(
            {201: {"created": Example("Created", CATEGORY)}},
            refused(
                render,
                Conflict("A category named 'Bebidas' exists.", code="CATEGORY_EXISTS"),
                "The name is taken",
            ),
            *COMMON,
        ),
    ),
    ("GET", "/v2/vouchers"): Operation(
        params={"cpf": CPF},
        responses=responses(
            {200: {"vouchers": Example("The customer's vouchers", page(VOUCHER))}}, *COMMON
        ),
    ),
    ("GET", "/v2/vouchers/{code}"): Operation(
        params={"code": "BEMVINDO10"},
        responses=responses(
            {200: {"voucher": Example("One voucher and its state", VOUCHER)}},
            VALIDATE_REFUSALS[0],
            *COMMON,
        ),
    ),
    ("POST", "/v2/vouchers/{code}/validate"): Operation(
        params={"code": "BEMVINDO10"},
        request={
            "for_customer": Example(
                "Use it for this customer, with your sale's reference",
                {"cpf": CPF, "reference": "VENDA-2026-0002"},
            )
        },
        responses=responses(
            {200: {"used": Example("Validated: used once", VALIDATED)}}, *VALIDATE_REFUSALS
        ),
    ),
    ("POST", "/v2/vouchers/validate"): Operation(
        request={
            "code": Example(
                "The code in the body",
                {"code": "PRESENTE25", "cpf": CPF, "reference": "VENDA-2026-0003"},
            )
        },
        responses=responses(
            {200: {"used": Example("Validated: used once", GIFT)}}, *VALIDATE_REFUSALS
        ),
    ),
}
