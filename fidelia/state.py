"""The app's composition root: what one app instance wires together, and its dependency.

The kit's ``Resources`` (settings, database, limiter) plus the domain's caches and the bot.
It lives here, above the doors and services, so that the kit knows no domain."""

from typing import Annotated

from fastapi import Depends, Request

from fidelia.customers.standing import CatalogCache
from fidelia.events.deals import DealCache
from fidelia.kit.deps import Resources
from fidelia.kit.settings import Settings
from fidelia.messaging import intake
from fidelia.messaging.bot import Bot, Inbound
from fidelia.messaging.group_commit import GroupCommit
from fidelia.messaging.wakeups import Wakeups
from fidelia.pins.service import Longest
from fidelia.tenants.service import KeyCache, TenantCache
from fidelia.tenants.tokens import HolderCache
from fidelia.vouchers.rules import RuleCache


class State(Resources):
    """Everything a request needs besides its own session; one per app instance."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.keys = KeyCache(settings.tenant_cache_seconds)
        self.tokens = HolderCache(settings.tenant_cache_seconds)  # /v2 Bearer tokens
        self.catalogs = CatalogCache(settings.tenant_cache_seconds)
        self.merchants = TenantCache(settings.tenant_cache_seconds)  # by id (public doors)
        self.rules = RuleCache(settings.tenant_cache_seconds)  # voucher rules, every sale
        self.deals = DealCache(settings.tenant_cache_seconds)  # active deals, retail sales
        self.bot = Bot(settings, self.catalogs)
        self.wakeups = Wakeups(self.db)  # the webhooks' NOTIFY to the workers, coalesced
        self.pin_policy = self.bot.policy
        self.longest_pins = Longest()  # namespaces whose PINs skip the open count a while
        self.group_commit = GroupCommit(self.db, self.run_in_db_slot)  # SQLite's webhooks

    def store_inbound(self, messages: list[Inbound]) -> int:
        """Store the messages in one transaction (new ones only); the worker processes them."""
        with self.db.session() as session:
            return intake.store(session, messages)

    async def receive_inbound(self, messages: list[Inbound]) -> int:
        """``store_inbound`` for an async endpoint, without a worker thread when it can.
        PostgreSQL: one statement on the async engine (``intake.store_now``). SQLite: in the
        event loop while the one writer's place is free (an insert is shorter than a thread
        hop), else with the other webhooks that found it busy, in one transaction
        (``group_commit.py``)."""
        if not self.db.is_sqlite:
            return await intake.store_now(self.db, messages, self.wakeups)
        return await self.group_commit.store(messages)


async def get_state(request: Request) -> State:
    """Async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, and a
    thread hop per request just to read an attribute cost more than the lookup itself."""
    return state_of(request)


def state_of(request: Request) -> State:
    """The app's state, for code that has the request: ``AppState`` without a dependency
    (FastAPI solves each dependency of each endpoint and dependency on every request, a
    cached one too, at some 10-20 µs each; the hot doors take ``Request`` instead)."""
    state: State = request.app.state.fidelia
    return state


AppState = Annotated[State, Depends(get_state)]
