"""The module graph: acyclic, the store backends behind their factory, and the clear-cut layers.

Every import counts, at module level or inside a function or an `if TYPE_CHECKING:` block: a local
import that only dodges a cycle leaves the cycle in the design. Importing `a.b.c` runs the
`__init__` of `a.b` first, so that package is a dependency of the importer too (unless the
importer is inside it: a package is always initialised before its own modules).
"""

from __future__ import annotations

import ast
import inspect
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from dispatcher.store import base
from dispatcher.store.base import Store
from dispatcher.store.postgres import PostgresStore
from dispatcher.store.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("dispatcher", "channels", "schedules")
# Each backend package, and the name of its store class.
BACKENDS = {"dispatcher.store.sqlite": "SqliteStore", "dispatcher.store.postgres": "PostgresStore"}
# The one module that picks and opens a backend.
FACTORY = "dispatcher.store.factory"


def _is_a_store(store: SqliteStore) -> Store:
    """mypy proves here that SqliteStore provides every method of every store Protocol."""
    return store


def _is_also_a_store(store: PostgresStore) -> Store:
    """And PostgresStore too."""
    return store


@dataclass(frozen=True)
class Import:
    """One import statement's target among the project's modules."""

    target: str
    line: int
    names: tuple[str, ...]  # the names a `from ... import` takes


def _module_files() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _module_files()


def _project_module(name: str) -> str | None:
    """The project module `name` is, or is inside of (`a.b.func` is `a.b`)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _absolute(module: str, node: ast.ImportFrom, *, package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".") if package else module.split(".")[:-1]
    parts = parts[:len(parts) - node.level + 1]
    return ".".join([*parts, *([node.module] if node.module else [])])


def _imports_in(source: str, module: str, *, package: bool = False) -> Iterator[Import]:
    """Every import of a project module in `source`, wherever it stands in the code."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _project_module(alias.name)
                if target is not None:
                    yield Import(target, node.lineno, ())
        elif isinstance(node, ast.ImportFrom):
            origin = _absolute(module, node, package=package)
            names = tuple(alias.name for alias in node.names)
            for name in (origin, *(f"{origin}.{n}" for n in names)):
                target = _project_module(name)
                if target is not None:
                    yield Import(target, node.lineno, names)


def _imports(module: str) -> Iterator[Import]:
    path = MODULES[module]
    return _imports_in(path.read_text(encoding="utf-8"), module,
                       package=path.name == "__init__.py")


def _graph() -> dict[str, dict[str, int]]:
    """Each module's project dependencies, with the line of the import that makes each."""
    graph: dict[str, dict[str, int]] = {module: {} for module in MODULES}
    for module in MODULES:
        for found in _imports(module):
            parts = found.target.split(".")
            for end in range(1, len(parts) + 1):
                needed = ".".join(parts[:end])
                inside = module == needed or module.startswith(needed + ".")
                if needed in MODULES and not inside:
                    graph[module].setdefault(needed, found.line)
    return graph


GRAPH = _graph()


def _cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One cycle of the graph as the modules along it (the first repeated at the end)."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path, pending = [start], [iter(sorted(graph[start]))]
        while pending:
            following = next(pending[-1], None)
            if following is None:
                done.add(path.pop())
                pending.pop()
            elif following in path:
                return [*path[path.index(following):], following]
            elif following not in done:
                path.append(following)
                pending.append(iter(sorted(graph[following])))
    return None


def _describe(cycle: list[str]) -> str:
    steps = [f"  {a} -> {b}  ({MODULES[a].relative_to(ROOT)}:{GRAPH[a][b]})"
             for a, b in itertools.pairwise(cycle)]
    return "import cycle:\n" + "\n".join(steps)


def test_the_walk_sees_every_kind_of_import() -> None:
    source = ("from __future__ import annotations\n"
              "import json\n"
              "if TYPE_CHECKING:\n"
              "    from dispatcher.store.base import Store\n"
              "def later() -> None:\n"
              "    import dispatcher.domain.clock\n"
              "    from . import decide\n")
    found = {i.target for i in _imports_in(source, "dispatcher.contact.engine")}
    assert found == {"dispatcher.store.base", "dispatcher.domain.clock", "dispatcher.contact",
                     "dispatcher.contact.decide"}
    # Importing dispatcher.compliance.gate initialises the dispatcher.compliance package first.
    assert "dispatcher.compliance" in GRAPH["dispatcher.contact.engine"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}}
    assert _cycle(graph) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b": 1}, "b": {}, "c": {"b": 2}}) is None


def test_the_import_graph_is_acyclic() -> None:
    cycle = _cycle(GRAPH)
    assert cycle is None, _describe(cycle)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_only_the_factory_reaches_a_backend(backend: str) -> None:
    offenders = set()
    for module in MODULES:
        if module in (FACTORY, backend) or module.startswith(backend + "."):
            continue
        for found in _imports(module):
            if found.target == backend or found.target.startswith(backend + "."):
                offenders.add(f"{module}:{found.line} imports {found.target}")
            elif BACKENDS[backend] in found.names:
                offenders.add(f"{module}:{found.line} imports {BACKENDS[backend]}")
    assert sorted(offenders) == []


def _package(module: str) -> str:
    """`dispatcher.<sub-package>` for dispatcher's modules, else the top-level package."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "dispatcher" and len(parts) > 1 else parts[0]


# What each package may import besides itself and the `dispatcher` package: the layers as they are.
LAYERS = {
    "dispatcher.errors": set(),
    "dispatcher.domain": {"dispatcher.errors"},
    "dispatcher.compliance": {"dispatcher.domain", "dispatcher.errors"},
    "schedules": {"dispatcher.compliance", "dispatcher.domain", "dispatcher.errors"},
    "channels": {"dispatcher.domain", "dispatcher.errors"},
    # The store knows the audit log's format, never the engine, ingest, the daemon or config.
    "dispatcher.store": {"dispatcher.audit", "dispatcher.compliance", "dispatcher.domain",
                         "dispatcher.errors"},
}


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_a_lower_layer_imports_only_what_is_below_it(package: str) -> None:
    reached = {f"{_package(module)} ({module} -> {target})"
               for module, targets in GRAPH.items() if _package(module) == package
               for target in targets
               if _package(target) not in {package, "dispatcher", *LAYERS[package]}}
    assert reached == set()


def test_the_store_uses_only_the_audit_log_format() -> None:
    # Not the audit jobs (verify, retention, anchor, outbox): those take a store themselves.
    used = {target for module, targets in GRAPH.items() if _package(module) == "dispatcher.store"
            for target in targets if _package(target) == "dispatcher.audit"}
    assert used <= {"dispatcher.audit", "dispatcher.audit.chain", "dispatcher.audit.checkpoint",
                    "dispatcher.audit.index", "dispatcher.audit.keys"}


def test_only_the_command_line_imports_the_command_line() -> None:
    users = {module for module, targets in GRAPH.items()
             if any(_package(t) == "dispatcher.cli" for t in targets)
             and _package(module) not in {"dispatcher.cli", "dispatcher.__main__"}}
    assert users == set()


def test_store_is_the_union_of_the_narrow_protocols() -> None:
    narrow = {cls for _, cls in inspect.getmembers(base, inspect.isclass)
              if cls.__module__ == base.__name__ and Protocol in cls.__bases__
              and cls is not Store}
    assert narrow
    assert narrow <= set(Store.__mro__)
    # Nothing of its own: a method every consumer skips would belong to no narrow Protocol.
    own = {name for name in vars(Store) if not name.startswith("_")}
    assert own == set()
    assert vars(Store).get("__annotations__", {}) == {}
