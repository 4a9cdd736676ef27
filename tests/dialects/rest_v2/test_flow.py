"""The whole v2 flow as an operator and an integrator run it: credentials, a coupon with
stock and a voucher from the ``fidelia`` command (a real subprocess), then token ->
customer -> sale -> voucher validation over HTTP; and one engine behind every door: the
POS door sees the same customer and balance, and a redemption there takes the stock."""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.dialects.rest_v2.conftest import (
    ANA,
    COUPONS,
    CUSTOMERS,
    SALES,
    TOKEN,
    VOUCHERS,
    error,
    make_merchant,
    page,
)
from tests.support.helpers import ledger_invariants

FIDELIA = Path(sys.executable).parent / "fidelia"


def fidelia(database_url: str, cwd: Path, *args: str) -> dict[str, Any]:
    """Run the command with ``--json``; its one line of output, parsed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIDELIA_")}
    env["FIDELIA_DATABASE_URL"] = database_url
    result = subprocess.run(
        [str(FIDELIA), *args, "--json"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.strip())
    assert isinstance(data, dict)
    return data


def test_token_customer_sale_voucher(client, db, database_url, tmp_path):
    make_merchant(db, slug="loja")
    run = lambda *args: fidelia(database_url, tmp_path, *args)  # noqa: E731
    credentials = run("apikey", "create", "--tenant", "loja")
    coupon = run(
        "reward", "create", "--tenant", "loja", "--title", "R$ 10 off", "--type", "fixed",
        "--value", "10.00", "--points", "100", "--stock", "3",
    )  # fmt: skip

    # 1. Token: the command says which value goes in which of the guide's fields; a client
    #    that copies the command's "api_key" into api_key (and "token" into api_secret) is
    #    served too.
    assert credentials["doors"]["rest_v2"] == {
        "api_key": credentials["token"],
        "api_secret": credentials["api_key"],
    }
    answer = client.post(TOKEN, json=credentials["doors"]["rest_v2"])
    copied = client.post(
        TOKEN, json={"api_key": credentials["api_key"], "api_secret": credentials["token"]}
    )
    assert copied.status_code == 200
    assert copied.json()["access_token"] == answer.json()["access_token"]
    assert answer.status_code == 200, answer.text
    headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}

    # 2. Customer.
    customer = client.post(
        CUSTOMERS,
        headers=headers,
        json={"name": "Ana Souza", "phone": "11987654321", "cpf": ANA, "password": "s3nha-123"},
    )
    assert customer.status_code == 201, customer.text
    ana = customer.json()

    # 3. Sale: 250.00 earns 250 points and R$ 12,50 cashback.
    sold = client.post(
        SALES, headers=headers, json={"cpf": ANA, "sale_amount": "250.00", "external_id": "NF-1"}
    )
    assert sold.status_code == 201, sold.text
    assert sold.json()["earned"] == {"points": 250, "cashback": "12.50"}
    assert sold.json()["balance"]["points"] == 250

    # 4. Voucher from the command, listed and validated once over the door.
    voucher = run("voucher", "create", "--tenant", "loja", "--customer-cpf", ANA, "--value", "15")
    listed = page(client.get(VOUCHERS, headers=headers, params={"customer_id": ana["id"]}))
    assert [v["code"] for v in listed] == [voucher["code"]]
    assert listed[0]["value"] == "15.00" and listed[0]["status"] == "active"
    used = client.post(f"{VOUCHERS}/{voucher['code']}/validate", headers=headers, json={"cpf": ANA})
    assert used.status_code == 200 and used.json()["status"] == "used"
    error(
        client.post(f"{VOUCHERS}/{voucher['code']}/validate", headers=headers), 409, "voucher_used"
    )

    # 5. The POS door (Basic: the same token / key) sees the same customer and balance, and
    #    its redemption of the coupon takes a unit of the stock the v2 door shows.
    basic = base64.b64encode(f"{credentials['token']}:{credentials['api_key']}".encode()).decode()
    pos = {"Authorization": f"Basic {basic}"}
    available = client.post(
        "/v1/pvt/POS/rewards/available", headers=pos, json={"CustomerId": ANA, "PurchaseValue": 50}
    ).json()
    assert available["Customer"]["Id"] == ana["id"]
    assert available["AvailablePoints"] == 250
    redeemed = client.post(
        f"/v1/pvt/POS/rewards/{coupon['id']}/redeem",
        headers=pos,
        json={"CustomerId": ANA, "OriginalKey": "K-1", "RedeemOrigin": 5},
    )
    assert redeemed.status_code == 200, redeemed.text
    (listed_coupon,) = page(client.get(COUPONS, headers=headers))
    assert listed_coupon["id"] == coupon["id"] and listed_coupon["stock"] == 2
    after = client.get(f"{CUSTOMERS}/{ana['id']}", headers=headers).json()
    assert after["balance"] == {"points": 150, "cashback": "12.50", "currency": "BRL"}

    # 6. And the v2 door's stock change is what the POS door's redemption runs into.
    stock = client.patch(f"{COUPONS}/{coupon['id']}/stock", headers=headers, json={"stock": 0})
    assert stock.status_code == 200 and stock.json()["stock"] == 0
    refused = client.post(
        f"/v1/pvt/POS/rewards/{coupon['id']}/redeem",
        headers=pos,
        json={"CustomerId": ANA, "OriginalKey": "K-2", "RedeemOrigin": 5},
    )
    assert refused.status_code == 409 and refused.json()["CodeName"] == "RewardOutOfStock"
    assert ledger_invariants(db) == []
