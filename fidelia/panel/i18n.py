"""The panel's languages: Babel message catalogues (``locales/<locale>/LC_MESSAGES/
messages.po``), read at start-up (no compile step, so ``pip install .`` needs nothing more),
and the viewer's formats for money, numbers and dates.

A user's language is their own choice, else their merchant's locale, else the browser's
(Accept-Language), else English. Strings in Python are marked with ``N_`` where they are
defined and translated where they are shown (``Texts.gettext``); templates use
``{{ _("...") }}`` and ``{% trans %}``. ``make messages`` extracts them (babel.cfg).
"""

from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal, format_percent
from babel.support import Translations

from fidelia.kit.money import from_minor

LOCALES = ("en", "es", "pt_BR")
DEFAULT = "en"
NAMES = {"en": "English", "es": "Español", "pt_BR": "Português (Brasil)"}
LOCALE_DIR = Path(__file__).resolve().parent / "locales"


def N_(message: str) -> str:  # noqa: N802 (the conventional name extractors look for)
    """Mark a string for extraction; it is translated where it is shown."""
    return message


@lru_cache
def translations(locale: str) -> Translations:
    """The catalogue of ``locale`` (one of LOCALES), read from its .po file once."""
    path = LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as po:
        catalog = read_po(po, locale=locale)
    buffer = BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer)


@lru_cache(maxsize=1024)
def babel_locale(locale: str) -> Locale:
    """Babel's Locale of a panel language, parsed once: every format call given the code
    instead parses it again (half the time of formatting a number)."""
    return Locale.parse(locale)


@lru_cache(maxsize=1024)  # codes come from users, merchants and Accept-Language headers
def supported(code: str | None) -> str | None:
    """The panel language for a locale code ('pt', 'pt-BR', 'es_CR', 'en_US'...), or None."""
    if not code:
        return None
    try:
        language = Locale.parse(code.strip().replace("-", "_")).language
    except (UnknownLocaleError, ValueError):
        return None
    return {"en": "en", "es": "es", "pt": "pt_BR"}.get(language)


def from_accept_language(header: str | None) -> str | None:
    """The first supported language of an Accept-Language header, by its q order."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and tag != "*":
            ranked.append((-quality, index, tag))
    for _quality, _index, tag in sorted(ranked):
        found = supported(tag)
        if found:
            return found
    return None


def choose(*candidates: str | None) -> str:
    """The first candidate the panel speaks, else English."""
    for candidate in candidates:
        found = supported(candidate)
        if found:
            return found
    return DEFAULT


# Babel's number and money formats are pure functions of (language, value[, currency]) and
# cost 5-15 µs each; a page shows dozens, mostly the same few values (0 cashback, a
# shop's usual balances), so they are remembered (a bounded, thread-safe cache).
@lru_cache(maxsize=8192)
def _money(locale: str, minor: int, currency: str) -> str:
    return format_currency(from_minor(minor, currency), currency, locale=babel_locale(locale))


@lru_cache(maxsize=8192)
def _integer(locale: str, value: int) -> str:
    return format_decimal(value, locale=babel_locale(locale))


class Texts:
    """What a page needs to speak the viewer's language: gettext and Babel's formats."""

    def __init__(self, locale: str, timezone: str = "UTC") -> None:
        self.locale = locale
        self.timezone = timezone
        self._t = translations(locale)
        self._babel = babel_locale(locale)
        self._zone = ZoneInfo(timezone)

    def gettext(self, message: str) -> str:
        return self._t.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self._t.ngettext(singular, plural, n)

    def money(self, minor: int, currency: str) -> str:
        """1234567 CRC -> '₡12.345,67' in es; always with its currency."""
        return _money(self.locale, int(minor), currency)

    def number(self, value: int | Decimal) -> str:
        if type(value) is int:
            return _integer(self.locale, value)
        return format_decimal(value, locale=self._babel)

    def percent(self, value: Decimal | float) -> str:
        """0.425 -> '42,5 %' in es."""
        return format_percent(value, "#,##0.#%", locale=self._babel)

    def date(self, day: date | None) -> str:
        return "—" if day is None else format_date(day, "medium", locale=self._babel)

    def datetime(self, moment: datetime | None, zone: bool = False) -> str:
        """In the merchant's time zone; with ``zone``, the zone is named too."""
        if moment is None:
            return "—"
        text = format_datetime(moment, "medium", tzinfo=self._zone, locale=self._babel)
        return f"{text} ({self.timezone})" if zone else text
