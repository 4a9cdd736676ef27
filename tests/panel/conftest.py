import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def browser_client(app):
    """A second, separate visitor (its own cookies)."""
    with TestClient(app) as other:
        yield other
