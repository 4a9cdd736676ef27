"""Numbers to E.164 (``kit/phone.py``), the same answer and the same error however often a
text is asked about: the parse is kept per text, its errors are not."""

from types import SimpleNamespace

import pytest

from fidelia.kit.errors import InvalidInput
from fidelia.kit.phone import normalize_e164, phone_of


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+506 8888-7777", None, "+50688887777"),
        ("50688887777", None, "+50688887777"),
        ("0050688887777", None, "+50688887777"),  # leading zeros dropped before the '+'
        ("11987654321", "BR", "+5511987654321"),
        ("+5511987654321", "BR", "+5511987654321"),
    ],
)
def test_numbers_come_out_in_e164_every_time(raw: str, region: str | None, e164: str) -> None:
    assert [normalize_e164(raw, region) for _ in range(3)] == [e164] * 3


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "A WhatsApp number is required."),
        ("abc", "Unparseable phone number: 'abc'"),
        ("+1", "Unparseable phone number: '+1'"),
        ("+50612", "Not a possible phone number: '+50612'"),
    ],
)
def test_a_bad_number_is_refused_every_time(raw: str, message: str) -> None:
    for _ in range(2):  # the second time from the kept parse (or, for an error, anew)
        with pytest.raises(InvalidInput) as refused:
            normalize_e164(raw)
        assert refused.value.code == "INVALID_PHONE" and str(refused.value) == message


def test_a_merchants_customers_number_is_read_in_its_country() -> None:
    brazil = SimpleNamespace(locale="pt-BR", currency="BRL")
    by_currency = SimpleNamespace(locale="es", currency="CRC")  # no territory in the locale
    assert phone_of(brazil, "11987654321") == "+5511987654321"
    assert phone_of(by_currency, "88887777") == "+50688887777"
    assert phone_of(brazil, "+50688887777") == "+50688887777"
