"""Request paths as clients really build them: a documented base URL ending in ``/`` plus
a path starting with ``/`` gives ``//`` (``https://host/v2/`` + ``/auth/token``)."""

import re

from starlette.types import ASGIApp, Receive, Scope, Send

_SLASHES = re.compile(r"/{2,}")
_RAW_SLASHES = re.compile(rb"/{2,}")


class CollapseSlashes:
    """ASGI middleware: repeated slashes in the path become one, before routing, for every
    door; ``prefixes`` then maps a doubled prefix to the real one (``/v2/v2/`` -> ``/v2/``,
    a base URL that ends in the version plus a path that starts with it)."""

    def __init__(self, app: ASGIApp, prefixes: dict[str, str] | None = None) -> None:
        self.app = app
        self.prefixes = prefixes or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path = scope["path"]
            fixed = self.fix(path)
            if fixed != path:
                scope = dict(scope)
                scope["path"] = fixed
                raw = scope.get("raw_path")
                if raw is not None:
                    raw = _RAW_SLASHES.sub(b"/", raw)
                    for prefix, to in self.prefixes.items():
                        if raw.startswith(prefix.encode()):
                            raw = to.encode() + raw[len(prefix) :]
                    scope["raw_path"] = raw
        await self.app(scope, receive, send)

    def fix(self, path: str) -> str:
        path = _SLASHES.sub("/", path)
        for prefix, to in self.prefixes.items():
            if path.startswith(prefix):
                path = to + path[len(prefix) :]
        return path
