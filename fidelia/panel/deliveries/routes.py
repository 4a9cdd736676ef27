"""Messages: the merchant's outbox (what the platform sends for it: WhatsApp replies and
notices, SMS codes, webhooks) by status, with the error of failed ones and a retry button.
Codes are shown redacted (messaging/deliveries.py)."""

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from fidelia.audit import service as audit
from fidelia.kit.deps import SessionDep
from fidelia.messaging import deliveries
from fidelia.ops.replica import MayLagSharedSessionDep
from fidelia.panel import i18n
from fidelia.panel.auth import OwnerDep
from fidelia.panel.i18n import N_
from fidelia.panel.web import page, panel_router, redirect

router = panel_router("/messages")
PAGE = 50
STATUS_LABELS = {
    "pending": N_("Pending"),
    "sent": N_("Sent"),
    "failed": N_("Failed"),
}
CHANNEL_LABELS = {
    "whatsapp": N_("WhatsApp"),
    "sms": N_("SMS"),
    "email": N_("E-mail"),
    "webhook": N_("Webhook"),
}


@router.get("")
def messages(
    request: Request,
    viewer: OwnerDep,
    session: MayLagSharedSessionDep,
    status: str = "",
    channel: str = "",
    before: int | None = None,
) -> HTMLResponse:
    rows = deliveries.listing(
        session,
        viewer.tenant_id,
        status=status or None,
        channel=channel or None,
        before_id=before,
        limit=PAGE + 1,
    )
    return page(
        request,
        "messages.html",
        rows=rows[:PAGE],
        counts=deliveries.counts(session, viewer.tenant_id),
        status_filter=status,
        channel=channel,
        statuses=[("", N_("Any status")), *STATUS_LABELS.items()],
        channels=[("", N_("Any channel")), *CHANNEL_LABELS.items()],
        status_labels=STATUS_LABELS,
        channel_labels=CHANNEL_LABELS,
        next_before=rows[PAGE - 1].id if len(rows) > PAGE else None,
    )


@router.post("/{message_id}/retry")
def retry(request: Request, message_id: int, viewer: OwnerDep, session: SessionDep) -> Response:
    row = deliveries.retry(session, viewer.tenant_id, message_id)
    audit.record(
        session,
        viewer.actor,
        "message.retry",
        "outbox",
        row.id,
        tenant_id=viewer.tenant_id,
        before={"status": "failed"},
        after={"status": "pending"},
    )
    texts = i18n.Texts(viewer.locale)
    return redirect(
        request, "/panel/messages", texts.gettext(N_("The message will be sent again."))
    )
