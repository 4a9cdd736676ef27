"""Logs: one JSON object a line in production, readable lines in development.

Every record, ours and the libraries' (uvicorn, SQLAlchemy), goes through the same structlog
processors: on the root logger, except the two lines written on every request and every
delivery (``get``, ``Hot``), which structlog writes itself with the same processors. The
request's id and merchant are added, then anything that looks like a secret or personal
data is masked (``scrub``) before it is written:

- e-mail addresses become ``[email]``;
- runs of four or more digits (phone numbers, PINs, short codes, card-like numbers) and
  long token-like strings (API keys, access tokens, signatures) become ``[redacted]``;
- fields named like a credential (``authorization``, ``api_key``, ``token``, ``password``,
  ``secret``, ``code``, ``pin``, ``phone``, ``email``, ``text``...) are dropped to
  ``[redacted]`` whatever their value.

Request lines carry the route *template* (``/v1/customers/{document}``), never the path, so
an identifier in a URL is not written either. The fields we write ourselves and know to be
safe (request id, route, method, status, duration, merchant id...) are not scrubbed.

The one exception is development's stand-in for SMS and e-mail (no gateway configured):
its whole point is to show the developer the code, so in the readable format those lines
are left as they are. Production refuses to start without a gateway for at least one of
them; the other's stand-in is scrubbed like everything else in JSON.
"""

import logging
import re
import sys
from typing import Any, Literal

import structlog
from structlog.typing import EventDict, WrappedLogger

from fidelia.ops.context import current

Format = Literal["json", "console"]

SAFE_FIELDS = frozenset(
    {
        "event",  # scrubbed separately (its text)
        "level",
        "logger",
        "timestamp",
        "request_id",
        "merchant_id",
        "method",
        "route",
        "door",
        "status",
        "duration_ms",
        "job",
        "channel",
        "outcome",
        "outbox_id",
        "worker",
        "pid",
    }
)
SECRET_FIELDS = re.compile(
    r"authorization|api_?key|token|password|secret|signature|code|pin|phone|e?mail|text|"
    r"document|cpf|cookie",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_DIGITS = re.compile(r"\+?\d(?:[\d\s().-]{2,}\d)?")
_TOKEN = re.compile(r"\b[A-Za-z0-9_\-]{24,}\b")
REDACTED = "[redacted]"
# Development stand-ins that exist to show the code (fidelia/messaging/channels.py LogOnly).
DEV_SHOWCASE = frozenset({"fidelia.sms", "fidelia.email", "fidelia.whatsapp"})


def _digits(match: re.Match[str]) -> str:
    text = match.group(0)
    return REDACTED if sum(c.isdigit() for c in text) >= 4 else text


_SQL_PARAMETERS = re.compile(r"\[parameters: .*?\](?=\n|$)", re.DOTALL)


def scrub(text: str) -> str:
    """``text`` without e-mail addresses, long digit runs, token-like strings and the bound
    parameters SQLAlchemy quotes in its errors."""
    text = _SQL_PARAMETERS.sub("[parameters: redacted]", text)
    text = _EMAIL.sub("[email]", text)
    text = _TOKEN.sub(REDACTED, text)
    return _DIGITS.sub(_digits, text)


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {
            k: REDACTED if SECRET_FIELDS.search(str(k)) else _scrub_value(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    return value


def _add_request(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    if event.get("message") == event.get("event"):
        event.pop("message", None)  # a stdlib record's text, already the event
    event.pop("color_message", None)  # uvicorn's coloured copy of the text
    ctx = current.get()
    if ctx is not None:
        event.setdefault("request_id", ctx.request_id)
        if ctx.merchant_id is not None:
            event.setdefault("merchant_id", ctx.merchant_id)
    return event


def _make_scrubber(fmt: Format) -> structlog.typing.Processor:
    def scrubber(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
        record = event.get("_record")
        name = record.name if record is not None else event.get("logger", "")
        if name in DEV_SHOWCASE:
            if fmt == "console":
                return event
            event["event"] = "message not sent: no gateway configured for this channel"
        if name == "uvicorn.error" and event.get("level") == "info":
            return event  # start-up and shut-down lines: addresses and ports, no request data
        for key, value in list(event.items()):
            if key.startswith("_") or key in SAFE_FIELDS and key != "event":
                continue
            if key not in ("event", "exception") and SECRET_FIELDS.search(key):
                event[key] = REDACTED
            else:
                event[key] = _scrub_value(value)
        return event

    return scrubber


class _StderrFile:
    """Whatever sys.stderr is now, as a file (test runners swap it per test)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class Hot:
    """A logger for the lines written on every request and every delivery (``get``): the
    same processors and renderer as every other record, run by structlog itself instead of
    through a stdlib ``LogRecord`` and the root logger's handlers, which cost 2-3 times as
    much a line (issue 14, BENCHMARKS.md). Below the configured level a call does nothing."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.bound: Any = None  # set by configure()

    def info(self, event: str, **fields: Any) -> None:
        if self.bound is not None:
            self.bound.info(event, **fields)


_HOT: dict[str, Hot] = {}
_native: Any = None  # the hot loggers' structlog logger, made by configure()


def _bind_hot(logger: Hot) -> None:
    logger.bound = None if _native is None else _native.bind(logger=logger.name)


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is now (test runners swap it per test)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure(fmt: Format = "console", level: str = "INFO") -> None:
    """Route every logger through structlog; idempotent (tests build many apps)."""
    pre_chain: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_request,
    ]
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
        tail: list[structlog.typing.Processor] = [
            structlog.processors.format_exc_info,
            _make_scrubber(fmt),
        ]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        tail = [_make_scrubber(fmt)]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=pre_chain,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *tail,
            renderer,
        ],
    )
    handler = _Stderr()
    handler.setFormatter(formatter)
    handler.set_name("fidelia")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "fidelia"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    # httpx logs every outgoing request's URL at INFO (Graph API, gateways, Bling: ids and
    # numbers in paths); its warnings and errors still come through.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Our request line (fidelia/ops/web.py) replaces uvicorn's access line, which has the
    # raw path (ids, phone numbers) and the client's address.
    access = logging.getLogger("uvicorn.access")
    access.handlers = []
    access.propagate = False
    global _native
    _native = structlog.wrap_logger(
        structlog.WriteLogger(_StderrFile()),  # type: ignore[arg-type]
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _add_request,
            *tail,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(root.getEffectiveLevel()),
        context_class=dict,
    )
    for hot in _HOT.values():
        _bind_hot(hot)
    structlog.configure(
        processors=[*pre_chain, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def format_for(env: str, setting: str) -> Format:
    """FIDELIA_LOG_FORMAT when set, else JSON in production and readable lines otherwise."""
    if setting in ("json", "console"):
        return setting  # type: ignore[return-value]
    return "json" if env == "production" else "console"


def get(name: str) -> Hot:
    """The logger of a line written on every request or delivery (see ``Hot``)."""
    logger = _HOT.get(name)
    if logger is None:
        logger = _HOT[name] = Hot(name)
        _bind_hot(logger)
    return logger
