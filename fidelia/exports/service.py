"""CSV exports of a merchant's customers, ledger, redemptions, orders and vouchers.

Streamed: rows are read a page at a time by keyset pagination (``id > last ORDER BY id
LIMIT n``, each page in a short read transaction of its own) and written out as they come,
so an export of any size runs in constant memory, in the panel (a streamed response) and
from the CLI (``fidelia export``). Files start with a UTF-8 byte order mark so spreadsheets
read accents right; with ``decimal_comma`` amounts use a decimal comma and fields are
separated by semicolons (what spreadsheets in such locales expect). Times are in the
merchant's time zone; money in the merchant's currency, points as whole numbers."""

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from fidelia.kit.db import Database
from fidelia.kit.errors import InvalidInput
from fidelia.kit.money import from_minor
from fidelia.models import (
    Balance,
    Customer,
    CustomerIdentifier,
    LedgerEntry,
    Order,
    Redemption,
    Reward,
    Tenant,
    Voucher,
)
from fidelia.models.order import CANCELLED, COMPLETE, IGNORED, INITIAL, PENDING

BOM = "\ufeff"
PAGE = 2000
STATES = {INITIAL: "initial", PENDING: "pending", COMPLETE: "complete", CANCELLED: "cancelled"}
STATES[IGNORED] = "ignored"


@dataclass(frozen=True)
class Options:
    first: date | None = None  # local days, inclusive
    last: date | None = None
    decimal_comma: bool = False


@dataclass(frozen=True)
class Kind:
    header: tuple[str, ...]
    model: Any
    query: Callable[[Tenant], Any]  # the columns, filtered to the merchant
    row: Callable[["Writer", Session, Sequence[Any]], list[list[object]]]  # a page's lines
    moment: Any  # the column the period applies to


class Writer:
    """Formats values the way the options ask."""

    def __init__(self, tenant: Tenant, options: Options) -> None:
        self.tenant, self.options = tenant, options
        self.zone = ZoneInfo(tenant.timezone)

    def money(self, minor: int | None) -> str:
        if minor is None:
            return ""
        text = f"{from_minor(minor, self.tenant.currency)}"
        return text.replace(".", ",") if self.options.decimal_comma else text

    def when(self, moment: datetime | None) -> str:
        return "" if moment is None else moment.astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S")


def _customers(w: Writer, session: Session, page: Sequence[Any]) -> list[list[object]]:
    ids = [row.id for row in page]
    known: dict[int, dict[str, str]] = {i: {} for i in ids}
    for customer_id, kind, value in session.execute(
        select(
            CustomerIdentifier.customer_id, CustomerIdentifier.kind, CustomerIdentifier.value
        ).where(CustomerIdentifier.customer_id.in_(ids))
    ):
        known[customer_id].setdefault(kind, value)
    balances: dict[tuple[int, str], int] = {
        (customer_id, account): amount
        for customer_id, account, amount in session.execute(
            select(Balance.customer_id, Balance.account, Balance.amount).where(
                Balance.program_id == w.tenant.program_id, Balance.customer_id.in_(ids)
            )
        )
    }
    return [
        [
            row.id,
            row.name or "",
            known[row.id].get("whatsapp") or known[row.id].get("phone", ""),
            known[row.id].get("email", ""),
            known[row.id].get("cpf") or known[row.id].get("cnpj", ""),
            row.birthday.isoformat() if row.birthday else "",
            w.when(row.created_at),
            "erased" if row.erased_at else "",
            balances.get((row.id, "points"), 0),
            w.money(balances.get((row.id, "cashback"), 0)),
        ]
        for row in page
    ]


def _ledger(w: Writer, _s: Session, page: Sequence[Any]) -> list[list[object]]:
    def amount(account: str, value: int) -> object:
        return w.money(value) if account == "cashback" else value

    return [
        [
            r.id,
            w.when(r.created_at),
            r.customer_id,
            r.account,
            r.kind,
            amount(r.account, r.amount),
            amount(r.account, r.balance_after),
            r.source_type,
            r.source_id,
            w.when(r.expires_at),
        ]
        for r in page
    ]


def _redemptions(w: Writer, _s: Session, page: Sequence[Any]) -> list[list[object]]:
    return [
        [
            r.id,
            w.when(r.created_at),
            r.customer_id,
            r.reward_id,
            r.title,
            r.points,
            w.money(r.value),
            r.status,
            r.origin,
            r.external_code,
            w.when(r.cancelled_at),
        ]
        for r in page
    ]


def _orders(w: Writer, _s: Session, page: Sequence[Any]) -> list[list[object]]:
    return [
        [
            r.id,
            r.original_id,
            w.when(r.created_at),
            w.when(r.completed_at),
            r.customer_id or "",
            STATES.get(r.state, str(r.state)),
            w.money(r.total),
            r.earned_points,
            w.money(r.earned_cashback),
            w.money(r.refunded),
            r.coupon or "",
        ]
        for r in page
    ]


def _vouchers(w: Writer, _s: Session, page: Sequence[Any]) -> list[list[object]]:
    return [
        [
            r.id,
            r.code,
            r.kind,
            r.campaign or "",
            r.customer_id or "",
            w.money(r.value),
            r.benefit,
            w.when(r.valid_from),
            w.when(r.valid_until),
            r.uses,
            r.max_uses,
            r.status,
            w.when(r.created_at),
        ]
        for r in page
    ]


KINDS: dict[str, Kind] = {
    "customers": Kind(
        (
            "id",
            "name",
            "phone",
            "email",
            "document",
            "birthday",
            "joined_at",
            "erased",
            "points",
            "cashback",
        ),
        Customer,
        lambda t: select(
            Customer.id, Customer.name, Customer.birthday, Customer.created_at, Customer.erased_at
        ).where(_key(Customer.program_id) == t.program_id),
        _customers,
        Customer.created_at,
    ),
    "ledger": Kind(
        (
            "id",
            "at",
            "customer_id",
            "account",
            "kind",
            "amount",
            "balance_after",
            "source_type",
            "source_id",
            "expires_at",
        ),
        LedgerEntry,
        lambda t: select(
            LedgerEntry.id,
            LedgerEntry.created_at,
            LedgerEntry.customer_id,
            LedgerEntry.account,
            LedgerEntry.kind,
            LedgerEntry.amount,
            LedgerEntry.balance_after,
            LedgerEntry.source_type,
            LedgerEntry.source_id,
            LedgerEntry.expires_at,
        ).where(_key(LedgerEntry.tenant_id) == t.id),
        _ledger,
        LedgerEntry.created_at,
    ),
    "redemptions": Kind(
        (
            "id",
            "at",
            "customer_id",
            "reward_id",
            "reward",
            "points",
            "value",
            "status",
            "origin",
            "code",
            "cancelled_at",
        ),
        Redemption,
        lambda t: (
            select(
                Redemption.id,
                Redemption.created_at,
                Redemption.customer_id,
                Redemption.reward_id,
                Reward.title,
                Redemption.points,
                Redemption.value,
                Redemption.status,
                Redemption.origin,
                Redemption.external_code,
                Redemption.cancelled_at,
            )
            .join(Reward, Reward.id == Redemption.reward_id)
            .where(_key(Redemption.tenant_id) == t.id)
        ),
        _redemptions,
        Redemption.created_at,
    ),
    "orders": Kind(
        (
            "id",
            "original_id",
            "created_at",
            "completed_at",
            "customer_id",
            "state",
            "total",
            "earned_points",
            "earned_cashback",
            "refunded",
            "coupon",
        ),
        Order,
        lambda t: select(
            Order.id,
            Order.original_id,
            Order.created_at,
            Order.completed_at,
            Order.customer_id,
            Order.state,
            Order.total,
            Order.earned_points,
            Order.earned_cashback,
            Order.refunded,
            Order.coupon,
        ).where(_key(Order.tenant_id) == t.id),
        _orders,
        Order.created_at,
    ),
    "vouchers": Kind(
        (
            "id",
            "code",
            "kind",
            "campaign",
            "customer_id",
            "value",
            "benefit",
            "valid_from",
            "valid_until",
            "uses",
            "max_uses",
            "status",
            "created_at",
        ),
        Voucher,
        lambda t: select(
            Voucher.id,
            Voucher.code,
            Voucher.kind,
            Voucher.campaign,
            Voucher.customer_id,
            Voucher.value,
            Voucher.benefit,
            Voucher.valid_from,
            Voucher.valid_until,
            Voucher.uses,
            Voucher.max_uses,
            Voucher.status,
            Voucher.created_at,
        ).where(_key(Voucher.tenant_id) == t.id),
        _vouchers,
        Voucher.created_at,
    ),
}


def _key(column: Any) -> Any:
    """``column + 0``: the merchant filter as an expression no index can serve, so both
    databases walk the primary key in id order (keyset pages cost their own rows) instead
    of reading all of a merchant's rows through a (merchant, ...) index and sorting them
    again for every page, which made a 1M-row export quadratic on SQLite."""
    return column + 0


def kind_of(name: str) -> Kind:
    kind = KINDS.get(name)
    if kind is None:
        raise InvalidInput(
            f"Unknown export {name!r}; one of: {', '.join(KINDS)}.", code="UNKNOWN_EXPORT"
        )
    return kind


def parse_day(raw: str | None, what: str) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw.strip())
    except ValueError as exc:
        raise InvalidInput(f"{what} is a date, YYYY-MM-DD.", code="INVALID_DATE") from exc


def filename(tenant: Tenant, name: str, options: Options) -> str:
    span = ""
    if options.first or options.last:
        span = f"-{options.first or 'start'}-{options.last or 'now'}"
    return f"{tenant.slug}-{name}{span}.csv"


def described(name: str, options: Options) -> dict[str, object]:
    """What an export contained, for the audit log (personal data leaves the platform)."""
    return {
        "export": name,
        "from": options.first.isoformat() if options.first else None,
        "to": options.last.isoformat() if options.last else None,
        "decimal_comma": options.decimal_comma,
    }


def rows(db: Database, tenant: Tenant, name: str, options: Options) -> Iterator[str]:
    """The CSV text, a page at a time (the first chunk carries the BOM and the header)."""
    kind = kind_of(name)
    if options.first and options.last and options.first > options.last:
        raise InvalidInput("The period ends before it starts.", code="INVALID_PERIOD")
    writer = Writer(tenant, options)
    query = kind.query(tenant)
    zone = ZoneInfo(tenant.timezone)
    if options.first is not None:
        query = query.where(kind.moment >= datetime.combine(options.first, time(0), zone))
    if options.last is not None:
        end = datetime.combine(options.last + timedelta(days=1), time(0), zone)
        query = query.where(kind.moment < end)
    delimiter = ";" if options.decimal_comma else ","
    return _stream(db, kind, query, writer, delimiter)


def _stream(db: Database, kind: Kind, query: Any, writer: Writer, delimiter: str) -> Iterator[str]:
    buffer = io.StringIO()
    out = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    out.writerow(kind.header)
    yield BOM + buffer.getvalue()
    last = 0
    while True:
        buffer.seek(0)
        buffer.truncate()
        with db.session(readonly=True) as session:
            page = session.execute(
                query.where(kind.model.id > last).order_by(kind.model.id).limit(PAGE)
            ).all()
            if not page:
                return
            out.writerows(kind.row(writer, session, page))
        last = page[-1].id
        yield buffer.getvalue()
