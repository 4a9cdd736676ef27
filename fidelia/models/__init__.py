"""All tables, one file each; importing this package registers them on Base.metadata."""

from fidelia.models.access_token import AccessToken
from fidelia.models.adjustment import Adjustment
from fidelia.models.api_key import ApiKey
from fidelia.models.audit import AuditEntry
from fidelia.models.base import Base
from fidelia.models.bling import BlingConnection, BlingEvent, BlingImport, BlingOAuthState
from fidelia.models.category import Category
from fidelia.models.challenge import Challenge
from fidelia.models.consent import Consent
from fidelia.models.customer import Customer, CustomerIdentifier
from fidelia.models.event import Deal, EarningRule, Event, Segment
from fidelia.models.heartbeat import WorkerHeartbeat
from fidelia.models.idempotency import IdempotencyKey
from fidelia.models.ledger import Balance, LedgerEntry
from fidelia.models.messaging import MessageLog, MessageTemplate
from fidelia.models.order import Order, OrderRefund
from fidelia.models.outbox import OutboxMessage
from fidelia.models.payment import LoyaltyPayment
from fidelia.models.pin import Pin
from fidelia.models.program import Program
from fidelia.models.redemption import Redemption
from fidelia.models.reward import Reward
from fidelia.models.rollup import CustomerDay, DailyRollup, Marker, RewardDay
from fidelia.models.simulator import SimulatorMessage
from fidelia.models.tenant import Tenant
from fidelia.models.user import Invitation, LoginFailure, User
from fidelia.models.voucher import Voucher, VoucherUse
from fidelia.models.voucher_rule import VoucherRule
from fidelia.models.whatsapp import InboundMessage, PinFailure, WhatsAppContact

__all__ = [
    "AccessToken",
    "Adjustment",
    "ApiKey",
    "AuditEntry",
    "Balance",
    "Base",
    "BlingConnection",
    "BlingEvent",
    "BlingImport",
    "BlingOAuthState",
    "Category",
    "Challenge",
    "Consent",
    "Customer",
    "CustomerDay",
    "CustomerIdentifier",
    "DailyRollup",
    "Deal",
    "EarningRule",
    "Event",
    "IdempotencyKey",
    "InboundMessage",
    "Invitation",
    "LedgerEntry",
    "LoginFailure",
    "LoyaltyPayment",
    "MessageLog",
    "MessageTemplate",
    "Marker",
    "Order",
    "OrderRefund",
    "OutboxMessage",
    "Pin",
    "PinFailure",
    "Program",
    "Redemption",
    "Reward",
    "RewardDay",
    "Segment",
    "SimulatorMessage",
    "Tenant",
    "User",
    "Voucher",
    "VoucherRule",
    "VoucherUse",
    "WhatsAppContact",
    "WorkerHeartbeat",
]
