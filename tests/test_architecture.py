"""The core's shape: it never imports the benchmarks, and its modules import each other without
circles (imports inside functions and under TYPE_CHECKING count too)."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "jacdistill"


def module_name(path: Path) -> str:
    parts = path.relative_to(CORE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def core_imports() -> dict[str, set[str]]:
    """Each core module -> the jacdistill modules it imports anywhere in its text."""
    graph = {}
    for path in CORE.rglob("*.py"):
        name, found = module_name(path), set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, up level - 1
                    base = ".".join(
                        [*package.split(".")[: len(package.split(".")) - node.level + 1], base]
                    ).strip(".")
                found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
        graph[name] = {m for m in found if m.startswith("jacdistill")}
    return graph


def resolve(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Keep only edges to core modules (``from jacdistill import teacher`` names a module)."""
    return {
        name: {m for m in targets if m in graph and m != name and m != "jacdistill"}
        for name, targets in graph.items()
    }


def test_the_core_never_imports_the_benchmarks():
    offenders = {
        name: sorted(m for m in targets if m.startswith("jacdistill.benchmarks"))
        for name, targets in core_imports().items()
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` as [a, b, …, a], or None where there is none."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            return path[path.index(name) :] + [name]
        if name in done:
            return None
        for target in sorted(graph[name]):
            circle = visit(target, path + [name])
            if circle:
                return circle
        done.add(name)
        return None

    return next((c for c in (visit(name, []) for name in sorted(graph)) if c), None)


def test_core_modules_import_each_other_without_circles():
    graph = resolve(core_imports())
    assert len(graph) > 15 and any(graph.values())  # the graph was read
    assert find_circle(graph) is None


def test_the_circle_finder_finds_a_circle():
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": set()}) is None
