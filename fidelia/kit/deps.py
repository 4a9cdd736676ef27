"""The app's shared state and the typed dependency aliases endpoints use."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from fidelia.kit.db import Database
from fidelia.kit.ratelimit import RateLimiter
from fidelia.kit.settings import Settings
from fidelia.messaging.bot import Bot, Inbound
from fidelia.tenants.service import KeyCache


class State:
    """Everything a request needs besides its own session; one per app instance."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database_url, settings.database_pool_size)
        self.limiter = RateLimiter(settings.redis_url, settings.rate_limits_enabled)
        self.keys = KeyCache(settings.tenant_cache_seconds)
        self.bot = Bot(settings)

    def process_inbound(self, messages: list[Inbound]) -> int:
        """Each message in its own transaction: one bad message does not hold up the rest,
        and a failure rolls back that message's dedupe row so Meta's retry is processed."""
        processed = 0
        for message in messages:
            with self.db.session() as session:
                processed += self.bot.handle(session, message)
        return processed


def get_state(request: Request) -> State:
    state: State = request.app.state.fidelia
    return state


AppState = Annotated[State, Depends(get_state)]


def _write_session(state: AppState) -> Iterator[Session]:
    with state.db.session() as session:
        yield session


def _read_session(state: AppState) -> Iterator[Session]:
    with state.db.session(readonly=True) as session:
        yield session


# scope="function": the commit happens before the response is sent, so a client never
# sees a 2xx for a transaction that failed to commit.
SessionDep = Annotated[Session, Depends(_write_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(_read_session, scope="function")]
