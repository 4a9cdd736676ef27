"""The panel's third-party front-end files: pinned npm packages (package.json and
package-lock.json at the project root), copied into ``static/vendor/`` by the build.

Run by ``make assets`` (and so by ``make venv``/``run``/``test``) and by the setuptools build
hook in setup.py, so ``pip install .`` of a fresh clone ships them too. The copies are
gitignored: the lock file is the source of truth, nothing is fetched at run time.

Standard library only: setup.py imports this file before anything is installed.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENDOR = HERE / "static" / "vendor"
# Served name -> file inside node_modules.
FILES = {
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
    "pico.min.css": "@picocss/pico/css/pico.min.css",
    "chart.umd.min.js": "chart.js/dist/chart.umd.min.js",
    "jsqr.js": "jsqr/dist/jsQR.js",
    "LICENSE-htmx.txt": "htmx.org/LICENSE",
    "LICENSE-pico.txt": "@picocss/pico/LICENSE.md",
    "LICENSE-chart.js.txt": "chart.js/LICENSE.md",
    "LICENSE-jsqr.txt": "jsqr/LICENSE",
}


def missing() -> list[str]:
    """Served files not built yet (the app refuses to start the panel without them)."""
    return [name for name in FILES if not (VENDOR / name).is_file()]


def _installed_matches_lock(root: Path) -> bool:
    """node_modules holds exactly the versions package-lock.json pins."""
    lock = json.loads((root / "package-lock.json").read_text())
    for key, entry in lock.get("packages", {}).items():
        if not key:
            continue
        manifest = root / key / "package.json"
        if not manifest.is_file():
            return False
        if json.loads(manifest.read_text()).get("version") != entry.get("version"):
            return False
    return True


def build(root: Path) -> None:
    """``npm ci`` when node_modules does not match the lock file, then copy the files."""
    if not (root / "package-lock.json").is_file():
        if not missing():
            return  # an unpacked sdist that already carries the built files
        raise SystemExit(f"{root}/package-lock.json not found: cannot build the panel's assets")
    if not _installed_matches_lock(root):
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("npm is needed once to build the panel's assets (apt-get install npm)")
        command = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
        subprocess.run(command, cwd=root, check=True)
    VENDOR.mkdir(parents=True, exist_ok=True)
    for name, source in FILES.items():
        shutil.copyfile(root / "node_modules" / source, VENDOR / name)


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent.parent)
    print(f"panel assets in {VENDOR}")
