"""The doors Fidelia opens, one per published integration guide: where each lives, which
credential it takes and how OpenAPI declares it. The home page, the API docs and the
per-door OpenAPI documents are all drawn from this one list."""

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Door:
    key: str  # used in /openapi/{key}.json and /docs/{key}
    title: str
    guide: str  # the seed it follows
    base: str  # the base path an integrator configures
    prefixes: tuple[str, ...]  # every path under one of these belongs to the door
    auth: str  # what an integrator sends, in words
    # OpenAPI security scheme name -> scheme; paths listed in `public` take none.
    schemes: dict[str, dict[str, Any]] = field(default_factory=dict)
    secured: tuple[str, ...] = ()  # prefixes whose operations need the scheme
    public: tuple[str, ...] = ()  # "METHOD /exact/path" operations that need no credential
    # Header parameters that *are* the credential: documented by the scheme instead.
    credential_headers: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()  # prefixes inside `prefixes` owned by another door

    def owns(self, path: str) -> bool:
        if any(path.startswith(p) for p in self.excludes):
            return False
        return any(path.startswith(p) for p in self.prefixes)

    def secures(self, method: str, path: str) -> bool:
        if f"{method.upper()} {path}" in self.public:
            return False
        return any(path.startswith(p) for p in self.secured)


DOORS: tuple[Door, ...] = (
    Door(
        key="pin",
        title="PIN per sale, WhatsApp bot, public lookup and redemption",
        guide="seed 000",
        base="/api/v1",
        prefixes=("/api/v1/",),
        auth="X-API-Key header (the merchant's API key) on /integraciones; "
        "lookup and redemption are public",
        schemes={"PinApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        secured=("/api/v1/integraciones/",),
        credential_headers=("x-api-key",),
    ),
    Door(
        key="pos",
        title="POS rewards: rewards, challenge, idempotent redemption, orders, refunds",
        guide="seed 001",
        base="/v1/pvt/POS",
        prefixes=("/v1/pvt/",),
        auth="HTTP Basic: the API token as user, the API key as password",
        schemes={"PosBasic": {"type": "http", "scheme": "basic"}},
        secured=("/v1/pvt/",),
    ),
    Door(
        key="retail",
        title="Retail loyalty: members, transactions, payments, assets, deals, events",
        guide="seed 002",
        base="/v1",
        prefixes=("/v1/",),
        excludes=("/v1/pvt/",),
        auth="x-api-key header (the merchant's API key) plus x-source-type, "
        "x-source-name, x-branch-id and x-pos-id",
        schemes={"RetailApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
        secured=("/v1/",),
        credential_headers=("x-api-key",),
    ),
    Door(
        key="rest-v2",
        title="REST v2: customers, sales, coupons and stock, vouchers, categories",
        guide="seed 004",
        base="/v2",
        prefixes=("/v2/",),
        auth="Bearer token from POST /v2/auth/token (api_key + api_secret)",
        schemes={"BearerToken": {"type": "http", "scheme": "bearer"}},
        secured=("/v2/",),
        public=("POST /v2/auth/token",),
    ),
    Door(
        key="whatsapp",
        title="WhatsApp Cloud API webhook (the bot)",
        guide="seed 000",
        base="/webhooks/whatsapp",
        prefixes=("/webhooks/whatsapp",),
        auth="X-Hub-Signature-256: HMAC-SHA256 of the raw body with the app secret",
    ),
    Door(
        key="bling",
        title="Bling ERP webhook (sales in; the connector reads Bling's API)",
        guide="seed 003",
        base="/webhooks/bling",
        prefixes=("/webhooks/bling",),
        auth="X-Bling-Signature-256: HMAC-SHA256 of the raw body with the client secret",
    ),
)


def door_of(key: str) -> Door | None:
    return next((door for door in DOORS if door.key == key), None)
