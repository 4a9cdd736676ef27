"""POST /v1/pvt/POS/rewards/{id}/redeem (idempotent on OriginalKey), cashback with a chosen
value, and DELETE /v1/pvt/POS/rewards/{id} | ?OriginalKey=... to cancel a redemption."""

from sqlalchemy import select

from fidelia.dialects.pdv.rewards import REDEMPTION_IDS
from fidelia.models import LedgerEntry, Redemption
from tests.dialects.pdv.conftest import (
    ANA,
    BIA,
    PHONE,
    add_reward,
    available,
    challenge,
    code_in,
    count,
    error,
    make_merchant,
    ok,
    order,
    redeem,
    redeem_path,
    validate,
    wallet,
)
from tests.support.helpers import ledger_invariants, sent

CANCEL = "/v1/pvt/POS/rewards"


def redemption_id(db, external_code):
    """The redemption's id on this door: 1,000,000,000 + its row's id."""
    with db.session(readonly=True) as session:
        return REDEMPTION_IDS + session.scalar(
            select(Redemption.id).where(Redemption.external_code == external_code)
        )


def debits(db):
    return count(db, LedgerEntry, LedgerEntry.kind == "redeem")


def test_redeem_answers_the_envelope_and_replays(client, db):
    merchant = make_merchant(db)
    reward = add_reward(db, merchant, "R$ 10 de desconto", points=100)
    order(client, merchant, "PDV-1", "250.00")
    first = redeem(client, merchant, reward, "K1")
    result = ok(first)
    assert result == {
        # RewardId identifies this redemption (what DELETE /rewards/{id} takes), as in the
        # vendor's example; the reward configuration has its own field.
        "RewardId": redemption_id(db, result["ExternalCode"]),
        "Id": redemption_id(db, result["ExternalCode"]),
        "RewardConfigurationId": reward,
        "Point": {"PointId": result["Point"]["PointId"], "Quantity": -100, "Metadatas": []},
        "ExternalCode": result["ExternalCode"],
        "OriginalKey": "K1",
        "Coupon": None,
        "ExternalProductId": None,
    }
    assert isinstance(result["Point"]["PointId"], int)
    assert isinstance(result["ExternalCode"], str) and result["ExternalCode"]
    assert wallet(db, merchant)[0] == 150

    # A retry, even with lower-cased keys, replays the first answer and debits nothing.
    assert redeem(client, merchant, reward, "K1").json() == first.json()
    lower = client.post(
        redeem_path(reward),
        headers=merchant.headers,
        json={"customerid": ANA, "originalkey": "K1", "redeemorigin": 5},
    )
    assert lower.json() == first.json()
    assert wallet(db, merchant)[0] == 150
    assert count(db, Redemption) == 1 and debits(db) == 1

    # The same key for another request is refused, and writes nothing.
    other = add_reward(db, merchant, "Brinde", "custom", points=10, value=None)
    error(redeem(client, merchant, other, "K1"), 422, "OriginalKeyReused")
    error(redeem(client, merchant, reward, "K1", value="5.00"), 422, "OriginalKeyReused")
    assert wallet(db, merchant)[0] == 150 and count(db, Redemption) == 1
    assert ledger_invariants(db) == []


def test_redeem_refusals(client, db):
    merchant = make_merchant(db)
    elsewhere = make_merchant(db, slug="outra")
    reward = add_reward(db, merchant, "Vale R$ 30", points=300, value="30.00")
    foreign = add_reward(db, elsewhere, "Deles", points=1)
    order(client, merchant, "PDV-1", "250.00")
    order(client, merchant, "PDV-2", "10.00", document=BIA, completed=False)

    error(redeem(client, merchant, reward, "K1"), 422, "InsufficientPoints")
    error(redeem(client, merchant, 999999, "K2"), 404, "RewardNotFound")
    error(redeem(client, merchant, foreign, "K3"), 404, "RewardNotFound")
    error(redeem(client, merchant, reward, "K4", customer="39053344705"), 404, "CustomerNotFound")
    error(redeem(client, merchant, reward, "K5", customer=BIA), 422, "InsufficientPoints")
    error(redeem(client, merchant, reward, "K6", customer="1"), 400, "InvalidDocument")
    no_key = client.post(redeem_path(reward), headers=merchant.headers, json={"CustomerId": ANA})
    error(no_key, 400, "InvalidRequest")
    assert count(db, Redemption) == 0 and debits(db) == 0
    assert wallet(db, merchant) == (250, 1250)

    # A refusal is not remembered: once the points are there, the same key goes through.
    order(client, merchant, "PDV-3", "100.00")
    assert ok(redeem(client, merchant, reward, "K1"))["Point"]["Quantity"] == -300
    assert wallet(db, merchant)[0] == 50


def test_merchant_that_validates_customers(client, db, worker, sms):
    merchant = make_merchant(db, should_validate_customer="true")
    reward = add_reward(db, merchant, "R$ 10 de desconto", points=100)
    order(client, merchant, "PDV-1", "250.00", customer={"Phone": PHONE})
    assert available(client, merchant, 100)["ShouldValidateCustomer"] is True

    error(redeem(client, merchant, reward, "K1"), 403, "CustomerValidationRequired")
    challenge(client, merchant, "T1")
    worker.drain()
    code = code_in(sms.sent[-1]["text"])
    assert validate(client, merchant, "000000" if code != "000000" else "111111") is False
    error(redeem(client, merchant, reward, "K1"), 403, "CustomerValidationRequired")
    assert wallet(db, merchant)[0] == 250

    assert validate(client, merchant, code) is True
    first = ok(redeem(client, merchant, reward, "K1"))
    assert ok(redeem(client, merchant, reward, "K1")) == first  # a retry is not a new redemption
    # One validation, one redemption.
    error(redeem(client, merchant, reward, "K2"), 403, "CustomerValidationRequired")
    assert wallet(db, merchant)[0] == 150 and count(db, Redemption) == 1


def test_cashback_with_a_partial_value(client, db):
    merchant = make_merchant(db)
    cashback = add_reward(db, merchant, "Cashback", "cashback", points=None, value="1.00")
    order(client, merchant, "PDV-1", "250.00")
    assert wallet(db, merchant) == (250, 1250)  # 250 points (R$ 25,00) + R$ 12,50
    assert available(client, merchant, 100)["AvailableCashback"] == 37.5

    # R$ 5,50 of R$ 37,50: all from the cashback account.
    result = ok(redeem(client, merchant, cashback, "C1", value="5.50"))
    assert result["Point"] == {"PointId": None, "Quantity": 0, "Metadatas": []}
    assert wallet(db, merchant) == (250, 700)
    # R$ 20,00: the R$ 7,00 left in cashback, then R$ 13,00 in points at R$ 0,10 each.
    result = ok(redeem(client, merchant, cashback, "C2", value=20))
    assert result["Point"]["Quantity"] == -130
    assert wallet(db, merchant) == (120, 0)
    assert available(client, merchant, 100)["AvailableCashback"] == 12.0

    error(redeem(client, merchant, cashback, "C3", value="12.10"), 422, "InsufficientPoints")
    error(redeem(client, merchant, cashback, "C4"), 400, "InvalidRequest")  # no Value
    error(redeem(client, merchant, cashback, "C5", value="0.50"), 400, "InvalidRequest")  # < min
    error(redeem(client, merchant, cashback, "C6", value="-1"), 400, "InvalidRequest")
    assert wallet(db, merchant) == (120, 0)
    ok(redeem(client, merchant, cashback, "C7", value="12.00"))
    assert wallet(db, merchant) == (0, 0)
    assert ledger_invariants(db) == []


def test_cancel_a_redemption_by_id_and_by_key(client, db):
    merchant = make_merchant(db)
    reward = add_reward(db, merchant, "R$ 10 de desconto", points=100)
    cashback = add_reward(db, merchant, "Cashback", "cashback", points=None, value="1.00")
    order(client, merchant, "PDV-1", "250.00")

    code = ok(redeem(client, merchant, reward, "K1"))["ExternalCode"]
    assert wallet(db, merchant)[0] == 150
    by_id = ok(client.delete(f"{CANCEL}/{redemption_id(db, code)}", headers=merchant.headers))
    assert by_id["IsCanceled"] is True
    assert by_id["Id"] == redemption_id(db, code) and by_id["ExternalCode"] == code
    assert by_id["RewardId"] == by_id["Id"] and by_id["RewardConfigurationId"] == reward
    assert by_id["Customer"]["Document"] == ANA and by_id["RedeemDate"]
    reversal = by_id["Points"]["Id"]
    assert by_id["Points"] == {
        "Id": reversal,
        "Points": 100,
        "Type": 0,
        "EventKey": "K1",
        "Quantity": 100,
    }
    with db.session(readonly=True) as session:
        entry = session.get_one(LedgerEntry, reversal)
        assert (entry.kind, entry.amount) == ("reverse", 100)
    assert wallet(db, merchant)[0] == 250
    again = ok(client.delete(f"{CANCEL}/{redemption_id(db, code)}", headers=merchant.headers))
    assert again["IsCanceled"] is True
    assert wallet(db, merchant)[0] == 250  # credited once

    ok(redeem(client, merchant, cashback, "K2", value="15.00"))  # R$ 12,50 + 25 points
    assert wallet(db, merchant) == (225, 0)
    for _ in range(2):
        by_key = ok(client.delete(CANCEL, params={"OriginalKey": "K2"}, headers=merchant.headers))
        assert by_key["IsCanceled"] is True and by_key["CashValue"] == 15.0
        assert wallet(db, merchant) == (250, 1250)

    # The ExternalCode works in the path too.
    code = ok(redeem(client, merchant, reward, "K3"))["ExternalCode"]
    assert ok(client.delete(f"{CANCEL}/{code}", headers=merchant.headers))["IsCanceled"] is True
    assert wallet(db, merchant) == (250, 1250)
    assert ledger_invariants(db) == []


def test_cancel_refused_once_its_order_is_complete(client, db):
    merchant = make_merchant(db)
    elsewhere = make_merchant(db, slug="outra")
    reward = add_reward(db, merchant, "R$ 10 de desconto", points=100)
    order(client, merchant, "PDV-1", "250.00")
    code = ok(redeem(client, merchant, reward, "K1"))["ExternalCode"]
    order(client, merchant, "PDV-2", "90.00", Coupon=code, completed=False)
    # Still pending: the redemption could be cancelled. Completed: it cannot.
    order(client, merchant, "PDV-2", "90.00", Coupon=code, completed=True)
    error(client.delete(f"{CANCEL}/{code}", headers=merchant.headers), 409, "OrderAlreadyComplete")
    refused = client.delete(CANCEL, params={"OriginalKey": "K1"}, headers=merchant.headers)
    error(refused, 409, "OrderAlreadyComplete")
    assert wallet(db, merchant)[0] == 150 + 90

    missing = client.delete(f"{CANCEL}/999999", headers=merchant.headers)
    error(missing, 404, "RedemptionNotFound")
    error(
        client.delete(CANCEL, params={"OriginalKey": "nope"}, headers=merchant.headers),
        404,
        "RedemptionNotFound",
    )
    error(client.delete(CANCEL, headers=merchant.headers), 400, "InvalidRequest")
    # Another merchant cannot see it.
    foreign = client.delete(f"{CANCEL}/{code}", headers=elsewhere.headers)
    error(foreign, 404, "RedemptionNotFound")


def test_the_same_amount_written_differently_replays(client, db):
    merchant = make_merchant(db)
    reward = add_reward(db, merchant, "Cashback", "cashback", points=None, value="1.00")
    order(client, merchant, "PDV-1", "250.00")
    first = redeem(client, merchant, reward, "K1", value=5.5)
    assert first.status_code == 200, first.text
    assert wallet(db, merchant) == (250, 700)  # R$ 5,50 out of the R$ 12,50 cashback
    assert debits(db) == 1
    for again in ("5.50", 5.50, "5.5"):
        assert redeem(client, merchant, reward, "K1", value=again).json() == first.json()
    # The replays debited nothing: one redemption, one debit, the same wallet.
    assert count(db, Redemption) == 1 and debits(db) == 1
    assert wallet(db, merchant) == (250, 700)
    assert ledger_invariants(db) == []


def redemption_rows(db):
    with db.session(readonly=True) as session:
        return {
            r.external_code: (r.id, r.status)
            for r in session.scalars(select(Redemption).order_by(Redemption.id))
        }


def test_cancel_by_the_reward_id_of_the_answer_cancels_that_sale_only(client, db):
    """Issue 8: a POS keeps Result.RewardId and cancels with DELETE /rewards/{RewardId}."""
    merchant = make_merchant(db)
    reward = add_reward(db, merchant, "R$ 10 de desconto", points=100)
    order(client, merchant, "PDV-1", "300.00")
    first = ok(redeem(client, merchant, reward, f"{reward}-{ANA}-SALE1"))
    second = ok(redeem(client, merchant, reward, f"{reward}-{ANA}-SALE2"))
    assert wallet(db, merchant)[0] == 100
    assert first["RewardId"] != second["RewardId"]
    assert {first["RewardConfigurationId"], second["RewardConfigurationId"]} == {reward}

    # The reward configuration's id, and the rows' own ids (what the old answer's Id was),
    # are no redemption ids: a clean 404, nothing given back.
    rows = redemption_rows(db)
    for wrong in {reward, *(row_id for row_id, _ in rows.values())}:
        error(
            client.delete(f"{CANCEL}/{wrong}", headers=merchant.headers), 404, "RedemptionNotFound"
        )
    assert (
        wallet(db, merchant)[0] == 100
        and count(db, LedgerEntry, LedgerEntry.kind == "reverse") == 0
    )

    cancelled = ok(client.delete(f"{CANCEL}/{second['RewardId']}", headers=merchant.headers))
    assert cancelled["IsCanceled"] is True
    assert cancelled["ExternalCode"] == second["ExternalCode"]
    assert cancelled["RewardId"] == second["RewardId"]
    after = redemption_rows(db)
    assert after[first["ExternalCode"]][1] == "done"
    assert after[second["ExternalCode"]][1] == "cancelled"
    with db.session(readonly=True) as session:
        reversals = list(session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "reverse")))
    assert [(e.source_id, e.amount) for e in reversals] == [
        (str(after[second["ExternalCode"]][0]), 100)
    ]
    assert wallet(db, merchant)[0] == 200

    # The first sale goes on: its redemption is still there and cancellable by its own id.
    again = ok(client.delete(f"{CANCEL}/{first['RewardId']}", headers=merchant.headers))
    assert again["ExternalCode"] == first["ExternalCode"]
    assert wallet(db, merchant)[0] == 300
    assert ledger_invariants(db) == []


def test_cashback_amount_in_points(client, db):
    """The vendor's reference: a cashback redemption gives Value or Points."""
    merchant = make_merchant(db)
    cashback = add_reward(db, merchant, "Cashback", "cashback", points=None, value="1.00")
    order(client, merchant, "PDV-1", "250.00")  # 250 points + R$ 12,50
    body = {"CustomerId": ANA, "OriginalKey": "P1", "Points": 50}  # 50 x R$ 0,10 = R$ 5,00
    result = ok(client.post(redeem_path(cashback), headers=merchant.headers, json=body))
    assert result["Point"]["Quantity"] == 0  # all from the cashback account
    assert wallet(db, merchant) == (250, 750)
    cancelled = ok(client.delete(CANCEL, params={"OriginalKey": "P1"}, headers=merchant.headers))
    assert cancelled["CashValue"] == 5.0
    for points in (0, -5, True):
        body = {"CustomerId": ANA, "OriginalKey": f"P{points}", "Points": points}
        refused = client.post(redeem_path(cashback), headers=merchant.headers, json=body)
        error(refused, 400, "InvalidRequest")
    assert wallet(db, merchant) == (250, 1250)


def test_a_redeem_claims_its_key_and_reads_its_customer_in_one_statement(client, db):
    """On PostgreSQL the ``OriginalKey``'s row and the customer with their wallet go in
    one statement (``claim(along=)``), and the redemption's row, the debit's lots and its
    entry in another, after the balance's guarded ``UPDATE`` (``redemptions.redeem``).
    SQLite sends them one by one. The answer and the rows are the same either way."""
    merchant = make_merchant(db)
    reward = add_reward(db, merchant, "R$ 10 de desconto", points=100)
    order(client, merchant, "PDV-1", "250.00")
    result, heard = sent(db, lambda: ok(redeem(client, merchant, reward, "K1")))
    heard = [s for s in heard if not s.startswith("BEGIN")]  # SQLite's write lock
    assert result["Point"]["Quantity"] == -100 and result["OriginalKey"] == "K1"
    assert wallet(db, merchant)[0] == 150
    assert count(db, Redemption) == 1 and debits(db) == 1
    assert ledger_invariants(db) == []
    reads_customer = [s for s in heard if "customer_identifiers" in s]
    if db.is_sqlite:
        assert len(reads_customer) == 1 and "idempotency_keys" not in reads_customer[0]
        return
    # The merchant caches keep nothing in tests: their reads left out, what is left is the
    # redemption's own (no notice: the customer has no WhatsApp).
    caches = ("SELECT tenants.", "SELECT programs.", "SELECT rewards.")
    own = [s for s in heard if not s.startswith(caches)]
    assert [" ".join(s.split()[:3]) for s in own] == [
        "WITH claimed AS",  # the key's row, and the customer with their wallet
        "UPDATE balances SET",
        "WITH spent AS",  # the lots spent, the redemption's row and the debit's entry
        "UPDATE idempotency_keys SET",  # the answer stored
    ]
    assert "INSERT INTO redemptions" in own[2] and "INSERT INTO ledger_entries" in own[2]
    assert reads_customer == [own[0]] and "INSERT INTO idempotency_keys" in own[0]
    # A retry is the claim (with the read) and the stored answer, nothing more.
    again, heard = sent(db, lambda: redeem(client, merchant, reward, "K1"))
    assert ok(again) == result
    replayed = [" ".join(s.split()[:2]) for s in heard if not s.startswith(caches)]
    assert replayed == ["WITH claimed", "SELECT idempotency_keys.request_hash,"]  # the answer
    assert wallet(db, merchant)[0] == 150 and count(db, Redemption) == 1
