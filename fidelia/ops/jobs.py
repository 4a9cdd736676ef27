"""Per-job observability for the outbox worker: each delivery attempt is timed, counted by
channel and outcome (fidelia_outbox_deliveries_total) and logged as one line, by wrapping
the channel senders the worker is given (fidelia/messaging/channels.py), so the worker's
own code is untouched."""

import time
from collections.abc import Callable
from typing import Any

from fidelia.messaging.channels import Permanent, Sender
from fidelia.ops import logging as ops_logging
from fidelia.ops import metrics

log = ops_logging.get("fidelia.job")


def instrumented(channel: str, sender: Sender) -> Sender:
    # The channel's children of the metrics, looked up once (``labels()`` takes a lock and
    # checks its labels on every call): the same series.
    seconds_of = metrics.DELIVERY_SECONDS.labels(channel)
    count_of = {
        outcome: metrics.DELIVERIES.labels(channel, outcome)
        for outcome in ("sent", "permanent", "retry")
    }

    def send(payload: dict[str, Any]) -> str | None:
        started = time.perf_counter()
        outcome = "sent"
        try:
            return sender(payload)
        except Permanent:
            outcome = "permanent"
            raise
        except Exception:
            outcome = "retry"
            raise
        finally:
            seconds = time.perf_counter() - started
            count_of[outcome].inc()
            seconds_of.observe(seconds)
            log.info(
                "job",
                job="outbox",
                channel=channel,
                outcome=outcome,
                duration_ms=round(seconds * 1000, 2),
            )

    return send


def instrument(senders: dict[str, Sender]) -> dict[str, Sender]:
    return {channel: instrumented(channel, sender) for channel, sender in senders.items()}


Wrapper = Callable[[dict[str, Sender]], dict[str, Sender]]
