"""Production operations: structured logs with a request id, Prometheus metrics, readiness,
the worker heartbeat, ``fidelia doctor`` and ``fidelia backup`` (docs/operations.md)."""
