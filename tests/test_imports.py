"""The layering rule, checked over the source: adapters import only what ``store/__init__.py`` exports,
and the harness imports nothing from the tests. The export list itself is checked both ways."""

from __future__ import annotations

import ast
import types
from pathlib import Path

import pytest

import store

ROOT = Path(__file__).resolve().parent.parent
ADAPTERS = ("rest", "outputlayer_mcp")


def _imports(package: str) -> list[tuple[str, int, str, list[str]]]:
    """(file, line, module, names) of every import in a package, at any depth of the file."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            where = str(path.relative_to(ROOT))
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((where, node.lineno, node.module, [alias.name for alias in node.names]))
            elif isinstance(node, ast.Import):
                found.extend((where, node.lineno, alias.name, []) for alias in node.names)
    return found


@pytest.mark.parametrize("package", ADAPTERS)
def test_adapters_import_only_the_store_exports(package: str) -> None:
    offending = []
    for where, line, module, names in _imports(package):
        if module.startswith("store."):
            offending.append(f"{where}:{line} imports {module}")
        elif module == "store":
            offending.extend(f"{where}:{line} imports store.{name}" for name in names if name not in store.__all__)
    assert offending == []


@pytest.mark.parametrize("package", ADAPTERS)
def test_adapters_never_touch_the_table_models(package: str) -> None:
    """The schema's SQLModel classes (store/models.py) and SQLAlchemy stay inside the store."""
    offending = [
        f"{where}:{line} imports {module}"
        for where, line, module, _ in _imports(package)
        if module.split(".")[0] in ("sqlmodel", "sqlalchemy")
    ]
    assert offending == []


def test_bench_imports_nothing_from_the_tests() -> None:
    offending = [f"{where}:{line}" for where, line, module, _ in _imports("bench") if module.split(".")[0] == "tests"]
    assert offending == []


def test_every_exported_name_exists_once() -> None:
    assert len(store.__all__) == len(set(store.__all__))
    assert [name for name in store.__all__ if not hasattr(store, name)] == []


def test_every_public_name_of_the_store_is_exported() -> None:
    """A name added to ``store/__init__.py`` is either in ``__all__`` or a submodule loaded on the way."""
    public = {
        name
        for name, value in vars(store).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"
    }
    assert sorted(public - set(store.__all__)) == []
