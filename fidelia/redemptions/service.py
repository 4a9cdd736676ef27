"""Redeeming rewards: the debit, the redemption record and its ledger entries, in one
transaction. The ledger's conditional update is what stops a double spend."""

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, cast

from sqlalchemy import Select, String, Table, bindparam, insert, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from fidelia.challenges.presence import require_presence
from fidelia.customers.service import finder, found
from fidelia.kit.clock import now
from fidelia.kit.db import rows_in
from fidelia.kit.errors import Conflict, Forbidden, InsufficientPoints, InvalidInput, NotFound
from fidelia.ledger.service import (
    CASHBACK,
    POINTS,
    Account,
    Entry,
    Source,
    balance,
    credit,
    enter_debit,
    last_earning_at,
    last_earning_column,
    spend_and_enter,
    spend_params,
    take,
)
from fidelia.messaging import notices, outbox
from fidelia.models import Balance, Customer, LedgerEntry, Order, Redemption, Reward, Tenant
from fidelia.models.order import COMPLETE
from fidelia.rewards.eligibility import Wallet
from fidelia.rewards.service import amount_off
from fidelia.tenants.point_value import points_for_value


def new_external_code() -> str:
    return "FD-" + secrets.token_hex(5).upper()


_WALLET = select(Balance.account, Balance.amount).where(
    Balance.program_id == bindparam("p"),
    Balance.customer_id == bindparam("c"),
    Balance.account.in_((POINTS, CASHBACK)),
)


def wallet_of(session: Session, customer: Customer) -> Wallet:
    """Both balances in one query (an account never credited counts as 0)."""
    rows = session.execute(_WALLET, {"p": customer.program_id, "c": customer.id})
    amounts = {account: amount for account, amount in rows}
    return Wallet(points=int(amounts.get(POINTS, 0)), cashback=int(amounts.get(CASHBACK, 0)))


_balances = cast(Table, Balance.__table__)
_customers = cast(Table, Customer.__table__)


def _balance_column(account: str) -> Any:
    return (
        select(_balances.c.amount)
        .where(
            _balances.c.program_id == _customers.c.program_id,
            _balances.c.customer_id == _customers.c.id,
            _balances.c.account == account,
        )
        .scalar_subquery()
    )


@dataclass(frozen=True)
class Redeemer:
    """A customer about to redeem, with what the redemption reads of them, read with the
    customer in one round trip (``find_redeemer``): the wallet, the last earning at the
    merchant (when asked for) and the WhatsApp contact the spend notice goes to."""

    customer: Customer
    wallet: Wallet
    last_earning_at: datetime | None  # at the merchant, when read (``visit``)
    contact: notices.Contact | None
    visit: bool = False  # whether ``last_earning_at`` was read


_wa, _wa_user = notices.contact_columns(_customers.c.id)
_REDEEMER_COLUMNS = (
    _balance_column(POINTS).label("wallet_points"),
    _balance_column(CASHBACK).label("wallet_cashback"),
    _wa.label("wa"),
    _wa_user.label("wa_user"),
)
_REDEEMERS = {
    False: finder(*_REDEEMER_COLUMNS),
    True: finder(
        *_REDEEMER_COLUMNS,
        last_earning_column(bindparam("tenant_id"), _customers.c.id).label("last_earning"),
    ),
}  # built once: without and with the last earning at the merchant
# Their columns' names, for their rows sent on the driver (``rows_in``: tuples).
_KEYS = {query: tuple(str(c.key) for c in query.exported_columns) for query in _REDEEMERS.values()}


def find_redeemer(
    session: Session, tenant: Tenant, kind: str, value: str, *, visit: bool = False
) -> Redeemer | None:
    """The customer of ``tenant``'s program known by ``(kind, value)`` (``customers.find``)
    with their wallet, contact and, with ``visit``, last earning at ``tenant``: one
    statement where ``find``, ``wallet_of``, ``last_earning_at`` and the notice took four."""
    query, params = redeemer_read(tenant, kind, value, visit=visit)
    # A hot statement: on the driver's side of the connection (``rows_in``), its row named.
    rows = rows_in(session, query, params)
    row = dict(zip(_KEYS[query], rows[0], strict=True)) if rows else None
    return redeemer_from(session, row, visit=visit)


def redeemer_read(
    tenant: Tenant, kind: str, value: str, *, visit: bool = False
) -> tuple[Select[Any], dict[str, Any]]:
    """``find_redeemer``'s statement (built once) and its parameters, for a caller that
    sends it along another (the POS door: with the idempotency claim, ``claim(along=)``);
    ``redeemer_from`` reads its row."""
    params: dict[str, Any] = {"program_id": tenant.program_id, "kind": kind, "value": value}
    if visit:
        params["tenant_id"] = tenant.id
    return _REDEEMERS[visit], params


def redeemer_from(
    session: Session, row: Mapping[str, Any] | None, *, visit: bool = False
) -> Redeemer | None:
    """The ``Redeemer`` of a ``redeemer_read`` row, by column name (None: no such
    customer)."""
    if row is None:
        return None
    return Redeemer(
        customer=found(session, row),
        wallet=Wallet(
            points=int(row["wallet_points"] or 0), cashback=int(row["wallet_cashback"] or 0)
        ),
        last_earning_at=row["last_earning"] if visit else None,
        contact=notices.contact_of(row["wa"], row["wa_user"]),
        visit=visit,
    )


def require_recent_visit(session: Session, tenant: Tenant, customer: Customer | Redeemer) -> None:
    """Seed 000: a redemption needs an accreditation at this merchant within the window,
    so the customer is physically at the counter. A ``Redeemer`` read with ``visit``
    brings the last earning along."""
    if isinstance(customer, Redeemer) and customer.visit:
        last = customer.last_earning_at
    elif isinstance(customer, Redeemer):
        last = last_earning_at(session, tenant.id, customer.customer.id)
    else:
        last = last_earning_at(session, tenant.id, customer.id)
    window = timedelta(minutes=tenant.verification_window_minutes)
    if last is None or now() - last > window:
        raise Forbidden(
            "No accreditation at this merchant within the verification window.",
            code="VERIFICATION_REQUIRED",
        )


def take_stock(session: Session, reward: Reward, change: int) -> None:
    """Rewards with a stock: a conditional update, so concurrent redemptions never take
    the last unit twice and stock never goes below zero.

    ``reward`` may be a cached copy (the doors' redemptions take it from the catalog cache,
    ``FIDELIA_TENANT_CACHE_SECONDS``): the stock itself is only ever read and changed in
    the database; the copy says only whether the reward keeps one. A stock the merchant
    just removed is read again before refusing; a stock just set on a reward that had none
    counts the redemptions from the cache's time on."""
    if reward.stock is None:
        return
    result = session.execute(
        update(Reward)
        .where(Reward.id == reward.id, Reward.stock.is_not(None), Reward.stock + change >= 0)
        .values(stock=Reward.stock + change)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        if session.scalar(select(Reward.stock).where(Reward.id == reward.id)) is None:
            return  # no stock kept any more
        raise Conflict("This reward is out of stock.", code="OUT_OF_STOCK")


@dataclass(frozen=True)
class Redeemed:
    """A redemption just made: what the doors answer, and the row as the session's
    ``Redemption`` (``redemption``, built on first use)."""

    redemption_id: int
    external_code: str
    points_entry: Entry | None
    points_left: int
    session: Session = field(repr=False)
    row: dict[str, Any] = field(repr=False)  # the columns written (but the id)

    @cached_property
    def redemption(self) -> Redemption:
        """The row written, as the session's ``Redemption`` (no read: its columns are
        known; later changes to it are flushed as usual)."""
        held = self.session.identity_map.get(identity_key(Redemption, self.redemption_id))
        if held is not None:
            return cast(Redemption, held)
        redemption = Redemption(id=self.redemption_id, **self.row)
        make_transient_to_detached(redemption)  # a row that exists: adding it writes nothing
        self.session.add(redemption)
        return redemption


_redemptions = cast(Table, Redemption.__table__)
_ADD_REDEMPTION = insert(_redemptions).returning(_redemptions.c.id)


def _redeeming(notice: bool | None) -> Any:
    """PostgreSQL: what a redemption writes after its debit's balance ``UPDATE`` (``take``),
    in one statement: the redemption row (a CTE), the lots spent and the debit's entry,
    its source the row's id (``spend_and_enter``), and the spend notice (``notice``: None
    for none, else whether it carries the NOTIFY, ``outbox.QUEUED``). Returns the entry's
    id and its source id (the redemption's). Bind parameters named apart from the tables'
    columns (``spend_and_enter``'s, ``r_*`` and the notice's ``outbox_*``)."""
    c = _redemptions.c
    made = (
        insert(_redemptions)
        .values(
            program_id=bindparam("p", type_=c.program_id.type),
            tenant_id=bindparam("t", type_=c.tenant_id.type),
            customer_id=bindparam("c", type_=c.customer_id.type),
            reward_id=bindparam("r_reward", type_=c.reward_id.type),
            points=bindparam("r_points", type_=c.points.type),
            value=bindparam("r_value", type_=c.value.type),
            status=bindparam("r_status", type_=c.status.type),
            origin=bindparam("r_origin", type_=c.origin.type),
            external_code=bindparam("r_code", type_=c.external_code.type),
            original_key=bindparam("r_key", type_=c.original_key.type),
            created_at=bindparam("at", type_=c.created_at.type),
        )
        .returning(c.id)
        .cte("made")
    )
    stmt = spend_and_enter(source_id=sql_cast(made.c.id, String)).returning(
        LedgerEntry.__table__.c.source_id
    )
    if notice is not None:
        stmt = stmt.add_cte(outbox.QUEUED[notice])
    return stmt


# Built once: without a notice, with one, with one that notifies.
_REDEEMING = {notice: _redeeming(notice) for notice in (None, False, True)}


def redeem(
    session: Session,
    tenant: Tenant,
    customer: Customer,
    reward: Reward,
    *,
    origin: str,
    cash_value: int | None = None,
    original_key: str | None = None,
    known: Redeemer | None = None,
) -> Redeemed:
    """Debit what the reward costs. A cashback reward spends ``cash_value`` minor units:
    the cashback account first, the rest in points at the merchant's point value. A debt on
    either account (a refund after the points were spent) blocks every redemption.
    ``known``: the customer as ``find_redeemer`` read them (wallet and contact), so they
    are not read again.

    The balances' guarded ``UPDATE`` first (``ledger.take``: refused before anything is
    written), then the rest: on PostgreSQL, for one debit (every reward but a cashback one
    paid from both accounts), the redemption row, the lots spent, the entry and the spend
    notice in ONE statement (``_REDEEMING``); else one statement each."""
    if known is not None and known.customer is not customer:
        raise ValueError("known must be the redeeming customer's")
    owed = known.wallet if known is not None else wallet_of(session, customer)
    if owed.points < 0 or owed.cashback < 0:
        raise InsufficientPoints("The customer owes points from a refund; earn them back first.")
    require_presence(session, tenant, customer)
    take_stock(session, reward, -1)
    points_acct = Account(customer.program_id, customer.id, POINTS)
    # Known before the row is written, cashback included: no UPDATE of it after.
    points = reward.points_required if reward.reward_type != "cashback" else 0
    value = amount_off(reward)
    taken: list[tuple[Account, int, int]] = []  # (account, amount, balance after)
    from_cashback = 0
    cashback_left = owed.cashback
    if reward.reward_type == "cashback":
        if cash_value is None or cash_value < max(reward.value, 1):
            raise InvalidInput("A cashback redemption needs a Value at least the reward's minimum.")
        value = cash_value
        cashback_acct = Account(customer.program_id, customer.id, CASHBACK)
        from_cashback = min(max(balance(session, cashback_acct), 0), cash_value)
        if from_cashback:
            cashback_left = take(session, cashback_acct, from_cashback)
            taken.append((cashback_acct, from_cashback, cashback_left))
        rest = cash_value - from_cashback
        if rest:
            points = points_for_value(tenant, rest)
            if points <= 0:
                raise InsufficientPoints("Not enough cashback.", code="INSUFFICIENT_CASHBACK")
            taken.append((points_acct, points, take(session, points_acct, points)))
    elif points > 0:
        taken.append((points_acct, points, take(session, points_acct, points)))
    spent_points = taken[-1] if taken and taken[-1][0] is points_acct else None
    left = spent_points[2] if spent_points is not None else balance(session, points_acct)
    # What is left is known (the debits returned it, or the wallet read above): the notice
    # does not read both balances again.
    notice = notices.spent_text(
        session,
        tenant,
        customer,
        reward.title,
        points=points,
        cashback=from_cashback,
        left=(left, cashback_left),
        contact=known.contact if known is not None else notices.NOT_READ,
    )
    code = new_external_code()
    row: dict[str, Any] = {
        "program_id": customer.program_id,
        "tenant_id": tenant.id,
        "customer_id": customer.id,
        "reward_id": reward.id,
        "points": points,
        "value": value,
        "status": "done",
        "origin": origin,
        "external_code": code,
        "original_key": original_key,
        "order_id": None,
        "created_at": now(),
        "cancelled_at": None,
    }
    entry = None
    if len(taken) == 1 and session.get_bind().dialect.name == "postgresql":
        acct, amount, after = taken[0]
        params = {
            **spend_params(acct, amount, after, Source(tenant.id, "redemption", "")),
            "r_reward": reward.id,
            "r_points": points,
            "r_value": value,
            "r_status": "done",
            "r_origin": origin,
            "r_code": code,
            "r_key": original_key,
            "at": row["created_at"],
        }
        notifying = None
        if notice is not None:
            notifying, queued = outbox.along(session, notice)
            params.update(queued)
        # A hot statement: on the driver's side of the connection (``rows_in``).
        ((entry_id, source_id),) = rows_in(session, _REDEEMING[notifying], params)
        redemption_id = int(source_id)
        if spent_points is not None:
            entry = Entry(int(entry_id), -amount, after)
    else:
        redemption_id = session.execute(_ADD_REDEMPTION, row).scalar_one()
        source = Source(tenant.id, "redemption", str(redemption_id))
        for acct, amount, after in taken:
            made = enter_debit(session, acct, amount, after, source)
            if acct is points_acct:
                entry = made
        if notice is not None:
            outbox.whatsapp_texts(session, [notice])
    return Redeemed(redemption_id, code, entry, left, session, row)


def find_redemption(
    session: Session,
    tenant: Tenant,
    *,
    id: int | None = None,
    key: str | None = None,
    external_code: str | None = None,
) -> Redemption:
    query = select(Redemption).where(Redemption.tenant_id == tenant.id)
    if id is not None:
        query = query.where(Redemption.id == id)
    elif external_code is not None:
        query = query.where(Redemption.external_code == external_code)
    else:
        query = query.where(Redemption.original_key == key)
    redemption = session.scalar(query.with_for_update())
    if redemption is None:
        raise NotFound("No such redemption at this merchant.", code="REDEMPTION_NOT_FOUND")
    return redemption


def cancel(
    session: Session, redemption: Redemption, *, even_if_complete: bool = False
) -> Redemption:
    """Give back what a redemption took, once. Refused once its order is complete (the
    discount was used), unless the whole order is being cancelled."""
    if redemption.status == "cancelled":
        return redemption
    if redemption.order_id is not None and not even_if_complete:
        order = session.get_one(Order, redemption.order_id)
        if order.state == COMPLETE:
            raise Conflict("The order that used this reward is complete.", code="ORDER_COMPLETE")
    taken = session.scalars(
        select(LedgerEntry).where(
            LedgerEntry.program_id == redemption.program_id,
            LedgerEntry.source_type == "redemption",
            LedgerEntry.source_id == str(redemption.id),
            LedgerEntry.kind == "redeem",
        )
    )
    for entry in list(taken):
        credit(
            session,
            Account(entry.program_id, entry.customer_id, entry.account),
            -entry.amount,
            Source(redemption.tenant_id, "redemption", str(redemption.id)),
            kind="reverse",
        )
    take_stock(session, session.get_one(Reward, redemption.reward_id), +1)
    redemption.status = "cancelled"
    redemption.cancelled_at = now()
    return redemption
