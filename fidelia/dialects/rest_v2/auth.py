"""Bearer tokens: ``POST /v2/auth/token`` trades an API credential for an access token valid
an hour; every other call sends it as ``Authorization: Bearer ...``.

The guide says "send ``api_key`` and ``api_secret``" without saying which of the merchant's
two values is which, so either order is accepted: the public API token starts ``ftk_``,
the secret API key ``fk_live_``. Besides the guide's JSON, the call accepts what OAuth 2
client-credentials clients send: form-encoded bodies, ``client_id`` / ``client_secret``
(also camelCase, and ``apiKey`` / ``apiSecret``), and HTTP Basic auth (RFC 6749 2.3.1).

Rate limits count per API credential, after authentication, so bad tokens cannot use up a
merchant's quota; failed token requests count per client IP, and an IP past that limit is
refused before its credentials are even checked."""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from fidelia.dialects.rest_v2.schemas import TokenIn, TokenOut
from fidelia.kit.deps import DbSlot
from fidelia.kit.errors import InvalidInput, Unauthorized
from fidelia.models import Tenant
from fidelia.state import AppState, State
from fidelia.tenants import tokens

router = APIRouter()

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="BearerToken",
    bearerFormat="opaque",
    description="An access token from POST /v2/auth/token",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]

TOKEN_PREFIX = "ftk_"  # the public half of a credential (`fidelia apikey create`: "token")
SECRET_PREFIX = "fk_"  # the secret half ("api_key": fk_live_...)
# Which body fields name which slot; the guide's names first.
FIRST = ("api_key", "apiKey", "client_id", "clientId")
SECOND = ("api_secret", "apiSecret", "client_secret", "clientSecret")


async def access_token(credentials: Credentials) -> str:
    if credentials is None or not credentials.credentials.strip():
        raise Unauthorized("Send Authorization: Bearer <access_token> (from POST /v2/auth/token).")
    return credentials.credentials.strip()


AccessToken = Annotated[str, Depends(access_token)]


async def merchant(token: AccessToken, state: AppState) -> Tenant:
    """Async: with the token in the cache and the counters in memory it costs no thread
    hop; a cache miss reads in a worker thread (no database slot: the endpoint's session
    may hold this request's one already)."""
    holder = state.tokens.cached(token)
    if holder is None:
        try:
            holder = await run_in_threadpool(state.tokens.holder_of, state.db, token)
        except Unauthorized as exc:
            raise Unauthorized(exc.message, code="INVALID_TOKEN") from exc
    await state.limiter.hit_async(
        state.settings.rate_limit_rest_v2, "rest-v2", str(holder.api_key_id)
    )
    return holder.tenant


Merchant = Annotated[Tenant, Depends(merchant)]


# -- reading the token request ------------------------------------------------------------


def _bad(message: str) -> InvalidInput:
    return InvalidInput(message, code="INVALID_REQUEST")


def _fields(raw: bytes, content_type: str) -> dict[str, Any]:
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        try:
            parsed = parse_qs(raw.decode(), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError as exc:
            raise _bad("The form body is not UTF-8.") from exc
        fields: dict[str, Any] = {}
        for name, values in parsed.items():
            if len(set(values)) > 1:
                raise _bad(f"{name} is given more than once with different values.")
            fields[name] = values[0]
        return fields
    if kind.startswith("multipart/"):
        raise _bad("Send the credentials as JSON (or form-encoded), not multipart.")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad("Invalid request: the body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise _bad("Invalid request: the body must be a JSON object.")
    return body


def _basic(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise _bad("The Basic authorization header is not base64 of 'id:secret'.") from exc
    user, sep, password = decoded.partition(":")
    if not sep or not user or not password:
        raise _bad("The Basic authorization header is not base64 of 'id:secret'.")
    return user.strip(), password.strip()


def _slot(fields: dict[str, Any], names: tuple[str, ...]) -> tuple[str, str] | None:
    """(field name, value) of one slot; refused when its names disagree or are not text."""
    given = [(name, fields[name]) for name in names if name in fields]
    if not given:
        return None
    for name, value in given:
        if not isinstance(value, str):
            raise _bad(f"{name} must be a string.")
        if not value.strip():
            raise _bad(f"{name} is empty.")
        if len(value) > 200:
            raise _bad(f"{name} is longer than 200 characters.")
    if len({value.strip() for _, value in given}) > 1:
        raise _bad(" and ".join(name for name, _ in given) + " disagree; send one.")
    return given[0][0], given[0][1].strip()


@dataclass(frozen=True)
class Pair:
    """The two values of a credential as sent, with the names of the fields they came in."""

    first: str
    first_field: str
    second: str
    second_field: str


async def token_request(request: Request) -> Pair:
    """The two values of the credential, as JSON, a form, or Basic auth."""
    fields = _fields(await request.body(), request.headers.get("content-type", ""))
    grant = fields.get("grant_type")
    if grant is not None and grant != "client_credentials":
        raise InvalidInput(
            "Only grant_type=client_credentials is supported (or none).",
            code="UNSUPPORTED_GRANT_TYPE",
        )
    first, second = _slot(fields, FIRST), _slot(fields, SECOND)
    basic = _basic(request)
    if basic is not None:
        in_body = {s[1] for s in (first, second) if s is not None}
        if not in_body <= set(basic):
            raise _bad("The Basic authorization header and the body name different values.")
        first, second = ("client_id", basic[0]), ("client_secret", basic[1])
    if first is None or second is None:
        raise _bad(
            "Send api_key and api_secret (JSON: "
            '{"api_key": "ftk_...", "api_secret": "fk_live_..."}; either order is accepted).'
        )
    return Pair(first[1], first[0], second[1], second[0])


def sort_pair(request: Pair) -> tuple[str, str, str, str]:
    """(token, the field it came in, secret, the field it came in), whatever the order."""

    def kind(value: str) -> str | None:
        if value.startswith(TOKEN_PREFIX):
            return "token"
        if value.startswith(SECRET_PREFIX):
            return "secret"
        return None

    a, b = (request.first, request.first_field), (request.second, request.second_field)
    for value, field in (a, b):
        if kind(value) is None:
            raise Unauthorized(
                f"Malformed {field}: neither an API token (ftk_...) nor an API key "
                "(fk_live_...). Send the two values `fidelia apikey create --json` prints "
                'under doors.rest_v2 (or "token" and "api_key"), in either order.',
                code="INVALID_CREDENTIALS",
            )
    if kind(a[0]) == kind(b[0]):
        what = "API tokens (ftk_...)" if kind(a[0]) == "token" else "API keys (fk_live_...)"
        raise Unauthorized(
            f"Malformed credentials: {a[1]} and {b[1]} are both {what}; send one API token "
            "(ftk_...) and the API key (fk_live_...) issued with it.",
            code="INVALID_CREDENTIALS",
        )
    (token, token_field), (secret, secret_field) = (a, b) if kind(a[0]) == "token" else (b, a)
    return token, token_field, secret, secret_field


def _issue(state: State, request: Pair) -> tokens.Issued:
    token, token_field, secret, secret_field = sort_pair(request)
    try:
        return tokens.issue(state.db, token, secret)
    except Unauthorized as exc:
        if exc.code == "UNKNOWN_API_KEY":
            message = (
                f"Unknown or revoked API token {token[:8]}... in {token_field}: no active "
                "credential has it."
            )
        else:
            message = (
                f"Wrong {secret_field}: the API key (fk_live_...) sent is not the one issued "
                f"with the API token in {token_field}."
            )
        raise Unauthorized(message, code="INVALID_CREDENTIALS") from exc


TokenRequest = Annotated[Pair, Depends(token_request)]
_BODY = TokenIn.model_json_schema()


@router.post(
    "/auth/token",
    response_model=TokenOut,
    tags=["Seed 004: auth"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _BODY},
                "application/x-www-form-urlencoded": {"schema": _BODY},
            },
        }
    },
)
def create_token(
    body: TokenRequest, request: Request, response: Response, state: AppState, _slot: DbSlot
) -> TokenOut:
    """Trade ``api_key`` + ``api_secret`` (either order) for a Bearer access token; a
    still-valid token of the same credential is answered again rather than a new one."""
    settings = state.settings
    # Failed attempts are limited per client IP by kit/auth_failures (every door's 401s).
    issued = _issue(state, body)
    state.limiter.hit(settings.rate_limit_rest_v2_token, "rest-v2-token", str(issued.api_key_id))
    response.headers["Cache-Control"] = "no-store"  # RFC 6749 5.1
    response.headers["Pragma"] = "no-cache"
    return TokenOut(
        access_token=issued.token,
        expires_in=issued.expires_in,
        expires_at=issued.expires_at.astimezone(UTC),
    )


@router.delete("/auth/token", status_code=204, tags=["Seed 004: auth"])
def revoke_token(token: AccessToken, _tenant: Merchant, state: AppState) -> Response:
    """Revoke this access token (every holder of it: a credential's callers share their
    live token); the next token call gets a new one."""
    tokens.revoke(state.db, token, state.tokens)
    return Response(status_code=204)
