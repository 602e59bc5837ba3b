"""The import graph: every module imports on its own, and only ``monitor/__main__.py`` imports the CLI."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import monitor

PACKAGE = Path(monitor.__file__).resolve().parent
SOURCES = sorted(PACKAGE.rglob("*.py"))


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(path: Path) -> set[str]:
    package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    return _imports_of(path.read_text(encoding="utf-8"), package)


def _imports_of(source: str, package: str) -> set[str]:
    """Every module ``source`` (a module of ``package``) imports, absolute; ``from pkg import name`` counts
    as ``pkg.name`` too."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            out.add(module)
            out.update(f"{module}.{alias.name}" for alias in node.names)
    return out


@pytest.mark.parametrize("path", [p for p in SOURCES if p.name != "__main__.py"], ids=_module)
def test_every_module_imports(path: Path) -> None:
    importlib.import_module(_module(path))


def test_only_main_imports_the_cli() -> None:
    importers = {
        str(p.relative_to(PACKAGE.parent))
        for p in SOURCES
        if any(m == "monitor.cli" or m.startswith("monitor.cli.") for m in _imported(p))
    }
    assert importers == {"monitor/__main__.py"}, "the CLI wires modules together; nothing imports it back"


def test_the_import_check_sees_every_spelling() -> None:
    """The checker itself: absolute, from-package and relative imports of the CLI all count."""
    spellings = ("import monitor.cli", "from monitor import cli", "from monitor.cli import main", "from .. import cli")
    for source in spellings:
        assert "monitor.cli" in _imports_of(source, "monitor.core"), source
    assert "monitor.cli" in _imports_of("from . import cli", "monitor")
    assert "monitor.cli" not in _imports_of("from monitor import config\nimport monitor.client", "monitor")
