"""Build hook: the panel's front-end files (pinned npm packages, see fidelia/panel/assets.py)
are copied into the package before it is built, so `pip install .` of a fresh clone serves a
working panel. Everything else is declared in pyproject.toml."""

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class build_py_with_assets(build_py):  # noqa: N801 (setuptools' own naming)
    def run(self) -> None:
        spec = importlib.util.spec_from_file_location(
            "panel_assets", ROOT / "fidelia/panel/assets.py"
        )
        assert spec is not None and spec.loader is not None
        assets = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(assets)
        assets.build(ROOT)
        self.__dict__.pop("data_files", None)  # glob package data again, built files included
        super().run()


setup(cmdclass={"build_py": build_py_with_assets})
