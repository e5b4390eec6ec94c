"""No two modules of isvapp import each other, directly or round a longer loop, counting the
imports made inside functions too (a lazy import hides a circle; it does not remove it). Two
modules that need each other want what both need moved below them."""
import ast
from pathlib import Path

import isvapp

PACKAGE = Path(isvapp.__file__).resolve().parent


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules():
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        found[module_name(path)] = path
    return found


def resolve(current, is_package, level, target):
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports_of(name, path, known):
    """The isvapp modules ``name`` imports, anywhere in its source."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    edges = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            edges |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom):
            source = resolve(name, is_package, node.level, node.module) if node.level else node.module or ""
            for alias in node.names:
                child = f"{source}.{alias.name}"
                if child in known:
                    edges.add(child)  # a submodule by name: its package is only its parent
                elif source in known:
                    edges.add(source)
    edges.discard(name)
    # A parent package runs before its children whatever they say: that is not a circle.
    return {e for e in edges if not name.startswith(e + ".")}


def cycles(graph):
    """Every elementary circle found by a depth-first walk, as a list of module names."""
    found, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_walk_finds_a_circle_when_there_is_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_isvapp_is_part_of_an_import_circle():
    known = modules()
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    assert len(graph) > 40 and "isvapp.background.alerts" in graph["isvapp.dashboard.golive"]  # the walk sees the imports
    assert cycles(graph) == []
