"""FastAPI's own OpenTelemetry is on only where the deployment sets OpenTelemetry up
(``fidelia/ops/web.py telemetry``): left on, it asks OpenTelemetry's providers on every
request whether one was configured, ~4 % of the webhook's CPU (issue 14)."""

import os

from fidelia.app import create_app
from fidelia.ops.web import telemetry

OFF = {"tracing": False, "metrics": False, "logs": False}


def test_off_without_opentelemetry_in_the_environment():
    assert telemetry({"PATH": "/usr/bin", "FIDELIA_ENV": "production"}) == OFF


def test_fastapis_defaults_where_the_deployment_sets_opentelemetry_up():
    assert telemetry({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}) is None
    assert telemetry({"OTEL_SERVICE_NAME": "fidelia"}) is None
    assert telemetry({"FASTAPI_OTEL_AUTO_CONFIGURE": "true"}) is None


def test_the_app_is_built_with_it(settings, monkeypatch):
    for key in [k for k in os.environ if k.startswith("OTEL_")]:
        monkeypatch.delenv(key)
    monkeypatch.delenv("FASTAPI_OTEL_AUTO_CONFIGURE", raising=False)
    app = create_app(settings, run_worker=False)
    # FastAPI keeps the configuration it was given, merged over its defaults.
    config = app._telemetry  # type: ignore[attr-defined]
    assert {key: config[key] for key in OFF} == OFF
    assert not app._native_telemetry.enabled()  # type: ignore[attr-defined]
