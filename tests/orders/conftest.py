"""Every orders test runs at the frozen instant ``T0`` (tests/orders/common.py)."""

import pytest

from fidelia.kit import clock
from tests.orders.common import T0


@pytest.fixture(autouse=True)
def _frozen():
    clock.freeze(T0)
    yield
    clock.freeze(None)
