"""The request dependency for reads that may lag (the replica, when one is configured).

Use it only where a few seconds of lag cannot hurt: public lookups, panel lists,
dashboards. A read that decides money (a redemption, a presence check, a balance used for a
debit) or that comes before a write in the same request takes ``SessionDep`` or
``ReadSessionDep`` (the primary).

The page a panel user lands on right after their own change (the redirect that carries the
one-time notice cookie) reads the primary: they see what they just did, even while the
replica is a moment behind."""

from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import contextmanager_in_threadpool
from sqlalchemy.orm import Session

from fidelia.kit.deps import DbSlot, ReadSessionDep, ResourcesDep

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


async def _lagging_or_shared(
    request: Request, state: ResourcesDep, primary: ReadSessionDep
) -> AsyncIterator[Session]:
    """``MayLagSessionDep`` for requests that read the primary anyway (the panel: its
    signed-in user is always read there): with no replica, or right after one's own
    change, the lagging read would be the primary too, so it is that same session (one
    transaction, one connection, the rows already loaded), not a second one. Async: it
    only picks a session; a replica's session is opened and closed in a worker thread."""
    if state.db.replica_engine is None or not may_lag(request):
        yield primary
        return
    async with contextmanager_in_threadpool(
        state.db.session(readonly=True, may_lag=True)
    ) as session:
        yield session


MayLagSharedSessionDep = Annotated[Session, Depends(_lagging_or_shared, scope="function")]
