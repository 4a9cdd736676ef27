"""Birthday gifts: issued by the scheduled job on the member's birthday in the merchant's
time zone (frozen clock), once a year, told over WhatsApp only with consent, and redeemable
as an asset at the counter."""

from datetime import UTC, datetime

from sqlalchemy import select

from fidelia.models import Voucher, VoucherUse
from fidelia.vouchers import birthdays
from tests.dialects.retail_v1.conftest import (
    ANA,
    BIA,
    count,
    details,
    error,
    make_shop,
    ok,
    register,
    sale,
)


def test_gifts_follow_each_merchants_midnight(client, db, graph, worker, frozen):
    frozen(datetime(2026, 4, 1, 12, 0, tzinfo=UTC))
    gift = {"birthday_gift_value": "10.00", "birthday_gift_days": "30"}
    auckland = make_shop(db, "auckland", timezone="Pacific/Auckland", **gift)  # UTC+12 in May
    angeles = make_shop(db, "angeles", timezone="America/Los_Angeles", **gift)  # UTC-7
    register(client, auckland, birthday="1990-05-07", allowedWhatsApp=True)
    register(client, angeles, birthday="1990-05-07")  # no WhatsApp consent
    register(client, angeles, phoneNumber=BIA, birthday="2000-02-29", allowedWhatsApp=True)
    me = {"phoneNumber": ANA}

    # 12:30 UTC on the 6th: already the 7th in Auckland, still the 6th in Los Angeles.
    frozen(datetime(2026, 5, 6, 12, 30, tzinfo=UTC))
    assert birthdays.run(db) == 1
    assert birthdays.run(db) == 0  # the job runs every minute: once a year each
    (asset,) = details(client, auckland, me, x_return_assets="active")["assets"]
    assert asset["type"] == "birthday" and asset["value"] == 1_000 and asset["redeemable"]
    assert asset["validFrom"] == "2026-05-06T12:00:00Z"  # midnight in Auckland
    assert asset["validUntil"] == "2026-06-05T12:00:00Z"
    assert details(client, angeles, me, x_return_assets="all")["assets"] == []

    # 07:30 UTC on the 7th: the 7th in Los Angeles too.
    frozen(datetime(2026, 5, 7, 7, 30, tzinfo=UTC))
    assert birthdays.run(db) == 1
    frozen(datetime(2026, 5, 8, 7, 30, tzinfo=UTC))
    assert birthdays.run(db) == 0
    assert count(db, Voucher, Voucher.kind == "birthday") == 2

    # Only the member who consented to WhatsApp hears about it.
    worker.run_once()
    (text,) = graph.texts_to(ANA)
    assert asset["key"] in text and "Loja Centro" in text
    assert len(graph.sent) == 1

    # Born on 29 February: the gift comes on the 28th in other years.
    frozen(datetime(2027, 2, 28, 9, 0, tzinfo=UTC))  # 01:00 on the 28th in Los Angeles
    assert birthdays.run(db) == 1
    assert [
        a["type"]
        for a in details(client, angeles, {"phoneNumber": BIA}, x_return_assets="active")["assets"]
    ] == ["birthday"]

    # The gift is an asset: R$ 10 off a sale, once.
    frozen(datetime(2026, 5, 20, 12, 0, tzinfo=UTC))
    used = ok(sale(client, auckland, "T-1", 5_000, me, usedAssets=[{"key": asset["key"]}]))
    assert used["data"]["usedAssets"][0]["discountAmount"] == -1_000
    assert used["data"]["amountToPay"] == 4_000
    assert details(client, auckland, me, x_return_assets="active")["assets"] == []
    with db.session(readonly=True) as session:
        gift = session.scalars(select(Voucher).where(Voucher.code == asset["key"])).one()
        assert (gift.kind, gift.value, gift.uses, gift.max_uses) == ("birthday", 1_000, 1, 1)
        (use,) = session.scalars(select(VoucherUse).where(VoucherUse.voucher_id == gift.id))
        assert use.reference is not None and "T-1" in use.reference
    again = sale(client, auckland, "T-2", 5_000, me, usedAssets=[{"key": asset["key"]}])
    error(again, 409, "4091031", "body.usedAssets[0].key")  # once
    assert count(db, VoucherUse) == 1
