"""How each door authenticates a merchant, for the fuzzer and the isolation test: the valid
credentials of a merchant, and deliberately wrong ones. A new door adds its prefix here."""

from typing import Any

from tests.support.world import Merchant, basic

# The guide's extra headers of the retail door (seed 002), besides its x-api-key.
RETAIL_SOURCE = {
    "x-source-type": "POS",
    "x-source-name": "reliability",
    "x-branch-id": "B1",
    "x-pos-id": "P1",
}

# Operations that are public, or authenticated by the platform rather than by a merchant.
PUBLIC = (
    "/api/v1/redimir/",
    "/webhooks/",
    "/simulator/",
    "/healthz",
    "/v2/auth/token",
)


def is_public(path: str) -> bool:
    return path == "/" or any(path.startswith(prefix) for prefix in PUBLIC)


class Credentials:
    """A merchant's credentials in each door's own scheme (a Bearer token for seed 004 is
    traded once, through the door itself)."""

    def __init__(self, client: Any, merchant: Merchant, graph_token: str = "") -> None:
        self.client, self.merchant, self.graph_token = client, merchant, graph_token
        self._bearer: dict[str, str] | None = None

    def bearer(self) -> dict[str, str]:
        if self._bearer is None:
            answer = self.client.post(
                "/v2/auth/token",
                json={"api_key": self.merchant.token, "api_secret": self.merchant.api_key},
            )
            assert answer.status_code == 200, answer.text
            self._bearer = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        return self._bearer

    def forget_bearer(self) -> None:
        """After the token was revoked (``DELETE /v2/auth/token``): trade a new one next."""
        self._bearer = None

    def for_path(self, path: str, method: str = "") -> dict[str, str]:
        m = self.merchant
        if path == "/v2/auth/token" and method.upper() == "DELETE":
            return self.bearer()  # revoking a token takes that token
        if path.startswith("/api/v1/integraciones"):
            return {"X-API-Key": m.api_key}
        if path.startswith("/v1/pvt"):
            return basic(m.token, m.api_key)
        if path.startswith("/v1/"):
            return {"x-api-key": m.api_key, **RETAIL_SOURCE}
        if path.startswith("/v2/") and path != "/v2/auth/token":
            return self.bearer()
        if path.startswith("/simulator/graph"):
            return {"authorization": f"Bearer {self.graph_token}"}
        return {}


def wrong_credentials(path: str, a: Merchant, b: Merchant) -> list[dict[str, str]]:
    """Credentials that must be refused: made up, and (where a door takes a pair) A's half
    with B's half."""
    if path.startswith("/api/v1/integraciones"):
        return [{"X-API-Key": "fk_live_wrong"}]
    if path.startswith("/v1/pvt"):
        return [basic("ftk_wrong", "fk_live_wrong"), basic(a.token, b.api_key)]
    if path.startswith("/v1/"):
        return [{"x-api-key": "fk_live_wrong", **RETAIL_SOURCE}]
    if path.startswith("/v2/"):
        return [{"Authorization": "Bearer wrong"}]
    return [{}]
