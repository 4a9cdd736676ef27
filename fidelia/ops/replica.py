"""The request dependency for reads that may lag (the replica, when one is configured).

Use it only where a few seconds of lag cannot hurt: public lookups, panel lists,
dashboards. A read that decides money (a redemption, a presence check, a balance used for a
debit) or that comes before a write in the same request takes ``SessionDep`` or
``ReadSessionDep`` (the primary)."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from fidelia.kit.deps import AppState, DbSlot


def _lagging_session(state: AppState, _slot: DbSlot) -> Iterator[Session]:
    with state.db.session(readonly=True, may_lag=True) as session:
        yield session


MayLagSessionDep = Annotated[Session, Depends(_lagging_session, scope="function")]
