"""Languages, assets and page security: complete catalogues, the user's language or the
merchant's, pinned assets served by the app, a CSP that allows no inline script."""

import re

import pytest
from babel.messages.pofile import read_po

from fidelia.panel import assets, i18n
from fidelia.panel.messages import extract, po_path
from tests.panel.support import make_merchant, post, sign_in


@pytest.mark.parametrize("locale", ["es", "pt_BR"])
def test_every_panel_string_is_translated(locale):
    with po_path(locale).open("rb") as po:
        catalog = read_po(po, locale=locale)
    untranslated = []
    for message in extract():
        if not message.id:
            continue
        found = catalog.get(message.id)
        strings = found.string if found is not None else None
        if isinstance(strings, str):
            strings = (strings,)
        if found is None or found.fuzzy or not strings or not all(strings):
            untranslated.append(message.id)
    assert untranslated == [], (
        "run `make messages` and translate the new strings in "
        f"fidelia/panel/locales/{locale}/LC_MESSAGES/messages.po"
    )


def test_language_is_the_users_else_the_merchants_else_the_browsers(app, client, db):
    a = make_merchant(db, "shop-a", locale="pt_BR")
    assert "Entrar" in client.get("/panel/login", headers={"Accept-Language": "es"}).text
    assert "Sign in" in client.get("/panel/login", headers={"Accept-Language": "de, en"}).text
    sign_in(client, a.owner)
    assert "Equipe" in client.get("/panel/team").text  # the merchant's Portuguese
    post(client, "/panel/account/language", {"locale": "es"})
    assert "Equipo" in client.get("/panel/team").text  # the user's own choice
    assert i18n.choose("pt") == "pt_BR" and i18n.choose("xx", None) == "en"


def test_money_and_dates_in_the_viewers_format():
    assert i18n.Texts("pt_BR").money(123456, "BRL") == "R$\xa01.234,56"
    assert i18n.Texts("en").money(123456, "USD") == "$1,234.56"


def test_assets_are_served_from_the_pinned_packages(client):
    assert assets.missing() == []
    for name in ("vendor/htmx.min.js", "vendor/pico.min.css", "vendor/chart.umd.min.js"):
        answer = client.get(f"/panel/static/{name}")
        assert answer.status_code == 200 and len(answer.content) > 10_000, name
    assert "htmx" in client.get("/panel/static/vendor/htmx.min.js").text[:2000].lower()


def test_pages_allow_no_inline_script_and_load_only_this_servers_files(client, db):
    a = make_merchant(db, "shop-a")
    sign_in(client, a.owner)
    for path in ("/panel/login", "/panel/onboarding", "/panel/program", "/panel/team"):
        answer = client.get(path)
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["cache-control"] == "no-store"
        scripts = re.findall(r"<script([^>]*)>(.*?)</script>", answer.text, re.S)
        assert scripts and all(
            'src="/panel/static/' in attrs and not body for attrs, body in scripts
        )
        assert not re.search(r"<[^>]+\son[a-z]+=", answer.text), path  # no inline handlers
        assert not re.search(r"(?:src|href)=\"(?:https?:)?//", answer.text), path
