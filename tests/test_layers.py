"""The layers stay in order (issue 14): the kit knows no domain, the tables know no service,
and the services know no door. Read from the source's imports, so a new one that breaks
the order fails here rather than in a review."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "fidelia"
# What faces the outside world: HTTP doors, the panel, the composition root, the CLI.
DOORS = {"dialects", "panel", "connectors", "simulator", "app", "state", "cli", "doors", "apidocs"}
# Modules outside those that are themselves doors: the WhatsApp webhook, health and metrics.
ENTRY_POINTS = {"messaging/webhook.py", "ops/web.py"}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fidelia."):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("fidelia."))
    return found


def _breaks(
    where: Path, allowed: set[str] | None = None, banned: set[str] | None = None
) -> list[str]:
    broken = []
    for path in sorted(where.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if banned and (
            relative.split("/")[0].removesuffix(".py") in banned or relative in ENTRY_POINTS
        ):
            continue  # a door may import other doors
        for module in _imports(path):
            top = module.split(".")[1]
            if (allowed is not None and top not in allowed) or (banned and top in banned):
                broken.append(f"{relative} imports {module}")
    return sorted(broken)


def test_the_kit_imports_nothing_but_the_kit() -> None:
    assert _breaks(PACKAGE / "kit", allowed={"kit"}) == []


def test_the_tables_import_only_the_kit() -> None:
    assert _breaks(PACKAGE / "models", allowed={"kit", "models"}) == []


def test_no_service_imports_a_door() -> None:
    assert _breaks(PACKAGE, banned=DOORS) == []
