"""The request dependency for reads that may lag (the replica, when one is configured).

Use it only where a few seconds of lag cannot hurt: public lookups, panel lists,
dashboards. A read that decides money (a redemption, a presence check, a balance used for a
debit) or that comes before a write in the same request takes ``SessionDep`` or
``ReadSessionDep`` (the primary).

The page a panel user lands on right after their own change (the redirect that carries the
one-time notice cookie) reads the primary: they see what they just did, even while the
replica is a moment behind."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from fidelia.kit.deps import DbSlot, ResourcesDep

# The panel's one-time notice (fidelia.panel.security.NOTICE), set by the redirect after a
# change; named here so the engine does not import the panel.
JUST_CHANGED_COOKIE = "fidelia_notice"


def may_lag(request: Request) -> bool:
    """Whether this request's reads may lag: not right after the client's own change."""
    return JUST_CHANGED_COOKIE not in request.cookies


def _lagging_session(request: Request, state: ResourcesDep, _slot: DbSlot) -> Iterator[Session]:
    with state.db.session(readonly=True, may_lag=may_lag(request)) as session:
        yield session


MayLagSessionDep = Annotated[Session, Depends(_lagging_session, scope="function")]
