"""Request paths as clients really build them: a documented base URL ending in ``/`` plus
a path starting with ``/`` gives ``//`` (``https://host/v2/`` + ``/auth/token``)."""

import re

from starlette.types import Scope

_SLASHES = re.compile(r"/{2,}")
_RAW_SLASHES = re.compile(rb"/{2,}")


class CollapseSlashes:
    """Repeated slashes in the path become one, before routing, for every door;
    ``prefixes`` then maps a doubled prefix to the real one (``/v2/v2/`` -> ``/v2/``, a base
    URL that ends in the version plus a path that starts with it). Applied by the app's
    edge middleware (``fidelia/edge.py``) to every HTTP and WebSocket scope."""

    def __init__(self, prefixes: dict[str, str] | None = None) -> None:
        self.prefixes = prefixes or {}

    def scope(self, scope: Scope) -> Scope:
        """``scope`` itself when its path is clean (the common case), else a fixed copy."""
        path = scope["path"]
        fixed = self.fix(path)
        if fixed == path:
            return scope
        scope = dict(scope)
        scope["path"] = fixed
        raw = scope.get("raw_path")
        if raw is not None:
            raw = _RAW_SLASHES.sub(b"/", raw)
            for prefix, to in self.prefixes.items():
                if raw.startswith(prefix.encode()):
                    raw = to.encode() + raw[len(prefix) :]
            scope["raw_path"] = raw
        return scope

    def fix(self, path: str) -> str:
        if "//" in path:
            path = _SLASHES.sub("/", path)
        for prefix, to in self.prefixes.items():
            if path.startswith(prefix):
                path = to + path[len(prefix) :]
        return path
