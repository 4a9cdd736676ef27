"""All tables, one file each; importing this package registers them on Base.metadata."""

from fidelia.models.api_key import ApiKey
from fidelia.models.base import Base
from fidelia.models.challenge import Challenge
from fidelia.models.customer import Customer, CustomerIdentifier
from fidelia.models.idempotency import IdempotencyKey
from fidelia.models.ledger import Balance, LedgerEntry
from fidelia.models.order import Order, OrderRefund
from fidelia.models.outbox import OutboxMessage
from fidelia.models.pin import Pin
from fidelia.models.program import Program
from fidelia.models.redemption import Redemption
from fidelia.models.reward import Reward
from fidelia.models.simulator import SimulatorMessage
from fidelia.models.tenant import Tenant
from fidelia.models.whatsapp import InboundMessage, PinFailure, WhatsAppContact

__all__ = [
    "ApiKey",
    "Balance",
    "Base",
    "Challenge",
    "Customer",
    "CustomerIdentifier",
    "IdempotencyKey",
    "InboundMessage",
    "LedgerEntry",
    "Order",
    "OrderRefund",
    "OutboxMessage",
    "Pin",
    "PinFailure",
    "Program",
    "Redemption",
    "Reward",
    "SimulatorMessage",
    "Tenant",
    "WhatsAppContact",
]
