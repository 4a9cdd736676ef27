"""The panel's message catalogues, kept up to date from the source (``make messages``):
strings marked ``N_``/``_``/``gettext``/``ngettext`` in the panel's Python files and
templates, plus the merchant settings' units and help texts (tenants.setting_help.SETTING_HELP,
shown on the Program form). Writes ``locales/messages.pot`` and merges it into each
language's ``messages.po``, keeping existing translations; new strings arrive untranslated,
and tests/panel/test_i18n.py fails until they are translated in every language."""

from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po, write_po

from fidelia.panel.i18n import LOCALE_DIR, LOCALES
from fidelia.tenants.setting_help import SETTING_HELP

PANEL = Path(__file__).resolve().parent
KEYWORDS = {**DEFAULT_KEYWORDS, "N_": None}
METHODS = [("templates/**.html", "jinja2"), ("**.py", "python")]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "true"}}


def extract() -> Catalog:
    catalog = Catalog(project="fidelia-panel", fuzzy=False)
    for filename, lineno, message, comments, context in extract_from_dir(
        PANEL,
        METHODS,
        OPTIONS,
        KEYWORDS,
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    for index, (unit, help_text) in enumerate(SETTING_HELP.values()):
        for text in (unit, help_text):
            catalog.add(text, None, [("../tenants/setting_help.py (SETTING_HELP)", index)])
    return catalog


def po_path(locale: str) -> Path:
    return LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po"


def update() -> None:
    template = extract()
    LOCALE_DIR.mkdir(parents=True, exist_ok=True)
    with (LOCALE_DIR / "messages.pot").open("wb") as out:
        write_po(out, template, omit_header=False, sort_output=True, width=100)
    for locale in LOCALES:
        path = po_path(locale)
        if path.exists():
            with path.open("rb") as po:
                catalog = read_po(po, locale=locale)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            catalog = Catalog(locale=locale, project="fidelia-panel")
        catalog.update(template, no_fuzzy_matching=True)
        with path.open("wb") as out:
            write_po(out, catalog, sort_output=True, width=100, ignore_obsolete=True)


if __name__ == "__main__":
    update()
    print(f"catalogues updated in {LOCALE_DIR}")
