"""Seed 001's OpenAPI examples, as Fidelia answers them today: a BRL merchant ("Loja Centro",
1 point per R$ 1, 5 % cashback) with reward 1 "R$ 10 de desconto" (100 points), 2 a
cashback reward and 3 a product reward (the mocked PDV cookbook's "20% na Camiseta Básica");
the customer Ana Souza, CPF 529.982.247-25. Amounts are decimal values in reais (the
guide's ``OrderTotal: 250.00``); the answers' envelope is built by the door's own
``envelope`` and refusals by its renderers."""

from typing import Any

from fidelia.dialects.pdv.errors import envelope, render, render_bare
from fidelia.idempotency.service import KeyReused
from fidelia.kit.errors import (
    Conflict,
    Forbidden,
    InsufficientPoints,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthorized,
)
from fidelia.kit.examples import Catalog, Example, Operation, refused, responses

CPF = "52998224725"
CUSTOMER = {
    "Id": 1,
    "OriginalId": "C-778",
    "Name": "Ana Souza",
    "Email": "ana.souza@example.com",
    "Phone": "+5511987654321",
    "Document": CPF,
    "IsEnrolled": True,
    "CurrentTier": None,
}
BRANCH = {"OriginalId": "LJ01", "Name": "Loja Centro"}
SALESPERSON = {"OriginalId": "V12", "Name": "Carlos"}


def _reward(**fields: Any) -> dict[str, Any]:
    return {
        "CanSelectValue": False,
        "IsCashback": False,
        "Requirements": "",
        "AvailableCashback": 0.0,
        "MaxCashbackForCurrentPurchase": 0.0,
        "CanUse": True,
        "CannotUseReason": 0,
        "RewardCanBeCumulative": True,
        "ExternalProductId": None,
        "ProductDisplayName": None,
        "ProductDiscountMode": None,
        "ProductDiscountValue": None,
        "ProductMaxUnitsPerRedeem": None,
        "ProductAvailableQuantity": None,
        **fields,
    }


def _cancelled(reward: int, ref: int, cash: float, key: str, back: int, entry: int | None) -> Any:
    return envelope(
        {
            "Id": ref,
            "RewardId": ref,
            "RewardConfigurationId": reward,
            "Customer": CUSTOMER,
            "ExternalCode": "FD-F81FFE9809",
            "CashValue": cash,
            "IsCanceled": True,
            "RedeemDate": "2026-05-07T18:31:04.512374+00:00",
            "Points": {"Id": entry, "Points": back, "Type": 0, "EventKey": key, "Quantity": back},
        }
    )


UNAUTHORIZED = refused(
    render,
    Unauthorized("HTTP Basic credentials required (API token as user, API key as password)."),
    "No or wrong Basic credentials (answered with WWW-Authenticate: Basic)",
)
RATE_LIMITED = refused(
    render,
    RateLimited("Rate limit of 10 per 1 second exceeded.", retry_after=1),
    "Over the credential's rate limit (see Retry-After)",
)
CUSTOMER_NOT_FOUND = NotFound(
    "No customer with this document at this merchant.", code="CUSTOMER_NOT_FOUND"
)
ORDER = {
    "OriginalId": "PDV-1001",
    "OrderPlacementDate": "2026-05-07T15:30:00-03:00",
    "OrderCompletedDate": "2026-05-07T15:32:00-03:00",
    "OrderStatus": "Faturado",
    "IsCompleted": True,
    "OrderTotal": 250.00,
    "Customer": {
        "OriginalId": "C-778",
        "Name": "Ana Souza",
        "Email": "ana.souza@example.com",
        "Phone": "11987654321",
        "Document": CPF,
    },
    "Products": [
        {
            "OriginalId": "P001",
            "Title": "Camiseta Básica",
            "Quantity": 2,
            "ProductPrice": 49.90,
            "IsActive": True,
        },
        {
            "OriginalId": "P002",
            "Title": "Calça Jeans",
            "Quantity": 1,
            "ProductPrice": 150.20,
            "IsActive": True,
        },
    ],
    "PaymentMethods": [{"OriginalId": "PIX", "Name": "Pix", "PaidAmount": 250.00}],
    "Branch": BRANCH,
    "SalesPerson": SALESPERSON,
}
ORDER_NOT_FOUND = refused(
    render,
    NotFound("No order 'PDV-1001' at this merchant.", code="ORDER_NOT_FOUND"),
    "No order with this OriginalId (or id) at this merchant",
)
REDEMPTION_NOT_FOUND = refused(
    render,
    NotFound("No such redemption at this merchant.", code="REDEMPTION_NOT_FOUND"),
    "No such redemption at this merchant",
)
ORDER_COMPLETE = refused(
    render,
    Conflict("The order that used this reward is complete.", code="ORDER_COMPLETE"),
    "The order that used the reward is complete: cancel the order instead",
)
STATE = "2026-05-08T13:00:00.114825+00:00"

EXAMPLES: Catalog = {
    ("POST", "/v1/pvt/POS/rewards/available"): Operation(
        request={
            "basket": Example(
                "The customer's CPF, the purchase and its products",
                {
                    "CustomerId": CPF,
                    "PurchaseValue": 129.90,
                    "DiscountValue": 0,
                    "Products": [
                        {
                            "OriginalId": "P001",
                            "LineId": "1",
                            "Title": "Camiseta Básica",
                            "Quantity": 1,
                            "ProductPrice": 49.90,
                            "ProductDiscountPrice": 39.90,
                            "IsActive": True,
                        }
                    ],
                },
            )
        },
        responses=responses(
            {
                200: {
                    "rewards": Example(
                        "Every reward, usable or not (CannotUseReason says why)",
                        {
                            "Customer": CUSTOMER,
                            "Rewards": [
                                _reward(
                                    Id=2,
                                    Title="Cashback",
                                    RewardType=3,
                                    Value=1.0,
                                    CanSelectValue=True,
                                    IsCashback=True,
                                    Requirements="Uso mínimo de R$ 1,00",
                                    AvailableCashback=12.5,
                                    MaxCashbackForCurrentPurchase=12.5,
                                    Points=0,
                                ),
                                _reward(
                                    Id=1,
                                    Title="R$ 10 de desconto",
                                    RewardType=1,
                                    Value=10.0,
                                    Points=100,
                                ),
                                _reward(
                                    Id=3,
                                    Title="20% na Camiseta Básica",
                                    RewardType=5,
                                    Value=20.0,
                                    Requirements="2 unidades de Camiseta Básica por resgate",
                                    Points=150,
                                    ExternalProductId="P001",
                                    ProductDisplayName="Camiseta Básica",
                                    ProductDiscountMode=0,
                                    ProductDiscountValue=20.0,
                                    ProductMaxUnitsPerRedeem=2,
                                ),
                            ],
                            "HasRewards": True,
                            "ShouldValidateCustomer": False,
                            "AvailablePoints": 250,
                            "CashbackEnabled": True,
                            "AvailableCashback": 12.5,
                            "MaxCashbackForCurrentPurchase": 12.5,
                            "ShouldValidateCustomerSignup": False,
                            "HasRestrictedItems": False,
                            "RestrictedValue": 0.0,
                            "EligibleValue": 129.9,
                        },
                    )
                }
            },
            refused(
                render,
                InvalidInput("Not a valid amount: -10", code="INVALID_AMOUNT"),
                "A negative or malformed amount",
            ),
            UNAUTHORIZED,
            RATE_LIMITED,
        ),
    ),
    ("POST", "/v1/pvt/POS/rewards/{reward_id}/redeem"): Operation(
        params={"reward_id": 1},
        request={
            "discount": Example(
                "Redeem reward 1 once per OriginalKey (a retry replays the answer)",
                {
                    "CustomerId": CPF,
                    "OriginalKey": "PDV-1002-R1",
                    "RedeemOrigin": 5,
                    "Metadatas": [{"Name": "Caixa", "Value": "3"}],
                    "Branch": BRANCH,
                    "SalesPerson": SALESPERSON,
                },
            ),
            "cashback": Example(
                "A cashback reward (id 2): Value is the amount to use, in reais",
                {"CustomerId": CPF, "OriginalKey": "PDV-1002-R2", "Value": 5.00},
            ),
        },
        responses=responses(
            {
                200: {
                    "redeemed": Example(
                        "Redeemed: RewardId is what DELETE /rewards/{id} takes; send "
                        "ExternalCode as the order's Coupon",
                        envelope(
                            {
                                "RewardId": 1000000001,
                                "Id": 1000000001,
                                "RewardConfigurationId": 1,
                                "Point": {
                                    "PointId": 5,
                                    "Quantity": -100,
                                    "Metadatas": [{"Name": "Caixa", "Value": "3"}],
                                },
                                "ExternalCode": "FD-F81FFE9809",
                                "OriginalKey": "PDV-1002-R1",
                                "Coupon": None,
                                "ExternalProductId": None,
                            }
                        ),
                    )
                }
            },
            refused(render, CUSTOMER_NOT_FOUND, "Unknown CPF"),
            refused(render, InsufficientPoints("Not enough points."), "Not enough points"),
            refused(
                render,
                KeyReused("The key 'PDV-1002-R1' was already used with a different request."),
                "The OriginalKey was used for another redemption",
            ),
            refused(
                render,
                Forbidden(
                    "This merchant validates customers: run the challenge before redeeming.",
                    code="CHALLENGE_REQUIRED",
                ),
                "The merchant validates customers: challenge first",
            ),
            UNAUTHORIZED,
        ),
    ),
    ("DELETE", "/v1/pvt/POS/rewards/{redemption_ref}"): Operation(
        params={"redemption_ref": "1000000001"},
        responses=responses(
            {
                200: {
                    "cancelled": Example(
                        "Cancelled: the points came back (Points.Id: the ledger entry)",
                        _cancelled(1, 1000000001, 10.0, "PDV-1002-R1", 100, 8),
                    )
                }
            },
            REDEMPTION_NOT_FOUND,
            ORDER_COMPLETE,
            UNAUTHORIZED,
        ),
    ),
    ("DELETE", "/v1/pvt/POS/rewards"): Operation(
        params={"OriginalKey": "PDV-1002-R1"},
        request={
            "key": Example(
                "The OriginalKey in the body (or in the query string)",
                {"OriginalKey": "PDV-1002-R1"},
            )
        },
        responses=responses(
            {
                200: {
                    "cancelled": Example(
                        "Cancelled by its OriginalKey",
                        _cancelled(1, 1000000001, 10.0, "PDV-1002-R1", 100, 8),
                    )
                }
            },
            REDEMPTION_NOT_FOUND,
            ORDER_COMPLETE,
            UNAUTHORIZED,
        ),
    ),
    ("POST", "/v1/pvt/POS/customers/{document}/challenge"): Operation(
        params={"document": CPF},
        request={
            "challenge": Example(
                "Send a code to the contacts on file", {"TransactionId": "T-1001"}
            ),
            "contact": Example(
                "No contact on file: the POS gives one",
                {"TransactionId": "T-1001", "Phone": "11987654321", "Email": "ana@example.com"},
            ),
        },
        responses=responses(
            {
                200: {
                    "sent": Example(
                        "Sent by SMS and e-mail (Code is echoed only in sandbox mode)",
                        {
                            "Success": True,
                            "FriendlyErrorMessage": None,
                            "ShouldInformPhone": False,
                            "ShouldInformEmail": False,
                            "SentBySMS": True,
                            "SentByEmail": True,
                            "TransactionId": "T-1001",
                            "ErrorMessage": None,
                            "Code": None,
                        },
                    ),
                    "no_contact": Example(
                        "No phone or e-mail on file nor given",
                        {
                            "Success": False,
                            "FriendlyErrorMessage": "Informe um telefone ou e-mail do cliente "
                            "para enviar o código.",
                            "ShouldInformPhone": True,
                            "ShouldInformEmail": True,
                            "SentBySMS": False,
                            "SentByEmail": False,
                            "TransactionId": "T-1001",
                            "ErrorMessage": None,
                            "Code": None,
                        },
                    ),
                }
            },
            refused(render_bare, CUSTOMER_NOT_FOUND, "Unknown CPF (answered bare, no envelope)"),
            refused(
                render_bare,
                RateLimited("Rate limit of 5 per 10 minute exceeded.", retry_after=540),
                "Five codes in ten minutes for this customer already",
            ),
        ),
    ),
    ("POST", "/v1/pvt/POS/customers/{document}/challengevalidate"): Operation(
        params={"document": CPF},
        request={
            "validate": Example(
                "The code the customer read out", {"TransactionId": "T-1001", "Code": "473540"}
            )
        },
        responses=responses(
            {
                200: {
                    "valid": Example(
                        "Valid: the next redemption may go ahead",
                        {"TransactionId": "T-1001", "Success": True, "FriendlyErrorMessage": None},
                    ),
                    "invalid": Example(
                        "Wrong or expired code",
                        {
                            "TransactionId": "T-1001",
                            "Success": False,
                            "FriendlyErrorMessage": "Código inválido ou expirado. "
                            "Solicite um novo código.",
                        },
                    ),
                }
            },
            refused(render_bare, CUSTOMER_NOT_FOUND, "Unknown CPF (answered bare, no envelope)"),
        ),
    ),
    ("POST", "/v1/pvt/POS/orders"): Operation(
        request={"order": Example("A completed sale (the same OriginalId updates it)", ORDER)},
        responses=responses(
            {
                200: {
                    "order": Example(
                        "Registered; a completed order earned its points and cashback",
                        envelope(
                            {
                                "Id": 1,
                                "OriginalId": "PDV-1001",
                                "OrderPlacementDate": "2026-05-07T15:30:00-03:00",
                                "OrderCompletedDate": "2026-05-07T15:32:00-03:00",
                                "OrderCancelledDate": None,
                                "OrderStatus": "Faturado",
                                "IsCancelledOrReturned": False,
                                "IsCompleted": True,
                                "OrderTotal": 250.0,
                                "Customer": CUSTOMER,
                                "UpdatedDate": "2026-05-07T18:32:01.552384+00:00",
                                "Coupon": None,
                                "State": 2,
                                "Origin": 1,
                                "EstimatedBonus": {
                                    "GenerateBonus": True,
                                    "EstimatedPoints": 250,
                                    "EstimatedCashback": 12.5,
                                    "EstimatedCashbackFormatted": "R$ 12,50",
                                },
                            }
                        ),
                    )
                }
            },
            refused(
                render,
                InvalidInput(
                    "OrderPlacementDate: give the UTC offset (e.g. 2026-05-07T15:30:00-03:00)."
                ),
                "A date without its UTC offset",
            ),
            refused(
                render,
                Conflict("The order is cancelled.", code="ORDER_CANCELLED"),
                "The order was cancelled",
            ),
            UNAUTHORIZED,
        ),
    ),
    ("POST", "/v1/pvt/POS/orders/{order_ref}/cancel"): Operation(
        params={"order_ref": "PDV-1001"},
        request={
            "cancel": Example(
                "Cancel the whole order",
                {"OrderCancelledDate": "2026-05-08T10:00:00-03:00", "OrderStatus": "Cancelado"},
            )
        },
        responses=responses(
            {
                200: {
                    "cancelled": Example(
                        "Cancelled (Status 3): what it earned is taken back",
                        envelope({"isCanceled": True, "UpdatedAt": STATE, "Status": 3}),
                    )
                }
            },
            ORDER_NOT_FOUND,
            UNAUTHORIZED,
        ),
    ),
    ("POST", "/v1/pvt/POS/{order_ref}/partialcancel"): Operation(
        params={"order_ref": "PDV-1001"},
        request={
            "refund": Example(
                "Refund one T-shirt (R$ 49,90): points and cashback come back in proportion",
                {
                    "ValueToRefund": 49.90,
                    "CancelKey": "PDV-1001-DEV1",
                    "Products": [{"OriginalId": "P001", "ValueToRefund": 49.90}],
                },
            )
        },
        responses=responses(
            {
                200: {
                    "refunded": Example(
                        "Refunded; the order stays complete (Status 2)",
                        envelope({"isCanceled": True, "UpdatedAt": STATE, "Status": 2}),
                    )
                }
            },
            refused(
                render,
                InvalidInput(
                    "The refund exceeds what is left of the order.", code="REFUND_EXCEEDS_TOTAL"
                ),
                "More than what is left of the order",
            ),
            refused(
                render,
                Conflict(
                    "This CancelKey was already used with another refund.",
                    code="CANCEL_KEY_REUSED",
                ),
                "The CancelKey was used for another refund",
            ),
            ORDER_NOT_FOUND,
            UNAUTHORIZED,
        ),
    ),
}
