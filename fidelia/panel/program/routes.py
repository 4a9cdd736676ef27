"""Program: every merchant setting ``tenant set`` knows, as one validated form. Each changed
field goes through tenants.service.set_setting (the one validation); any error rolls the
whole form back and shows each message next to its field."""

from collections.abc import Callable
from zoneinfo import available_timezones

from babel.numbers import list_currencies
from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from fidelia.audit import service as audit
from fidelia.kit.deps import ReadSessionDep, SessionDep
from fidelia.panel import i18n
from fidelia.panel.auth import OwnerDep
from fidelia.panel.i18n import N_
from fidelia.panel.program.fields import form_groups, shown
from fidelia.panel.web import FormDep, FormRejected, errors_of, page, panel_router, redirect
from fidelia.state import AppState
from fidelia.tenants.service import SETTINGS, set_setting, settings_of

router = panel_router("/program")
CURRENCIES = sorted(list_currencies())
TIMEZONES = sorted(available_timezones())


def _page(
    request: Request,
    state: AppState,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> HTMLResponse:
    return page(
        request,
        "program.html",
        status=status,
        groups=form_groups(values),
        errors=errors,
        cache_seconds=f"{state.settings.tenant_cache_seconds:g}",
        currencies=CURRENCIES,
        timezones=TIMEZONES,
    )


@router.get("")
def program(
    request: Request, viewer: OwnerDep, session: ReadSessionDep, state: AppState
) -> HTMLResponse:
    current = {k: shown(v) for k, v in settings_of(viewer.tenant_in(session)).items()}
    return _page(request, state, current, {})


@router.post("")
def save_program(
    request: Request, viewer: OwnerDep, session: SessionDep, state: AppState, form: FormDep
) -> Response:
    tenant = viewer.tenant_in(session)
    current = {k: shown(v) for k, v in settings_of(tenant).items()}
    submitted = {k: form[k].strip() for k in SETTINGS if k in form}
    changed = [k for k in SETTINGS if k in submitted and submitted[k] != current[k]]

    def change(key: str) -> Callable[[], object]:
        return lambda: set_setting(session, tenant.slug, key, submitted[key])

    errors = errors_of({key: change(key) for key in changed})
    if errors:
        raise FormRejected(_page(request, state, {**current, **submitted}, errors, 422))
    if changed:
        after = {k: shown(v) for k, v in settings_of(tenant).items()}
        audit.record(
            session,
            viewer.actor,
            "setting.change",
            "settings",
            tenant.id,
            tenant_id=tenant.id,
            before={k: current[k] for k in changed},
            after={k: after[k] for k in changed},
        )
    texts = i18n.Texts(viewer.locale)
    notice = texts.gettext(N_("Program saved.")) if changed else texts.gettext(N_("No changes."))
    return redirect(request, "/panel/program", notice)
