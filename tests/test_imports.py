"""No two modules of isvapp import each other, directly or round a longer loop, counting the
imports made inside functions too (a lazy import hides a circle; it does not remove it). Two
modules that need each other want what both need moved below them."""

import ast
import re
from pathlib import Path

import isvapp
import pytest

from .helpers import LAYERS

pytestmark = pytest.mark.any_database  # the import graph

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
                found.append(stack[stack.index(nxt) :] + [nxt])
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
    assert (
        len(graph) > 40 and "isvapp.background.alerts" in graph["isvapp.dashboard.golive"]
    )  # the walk sees the imports
    assert cycles(graph) == []


def layer_of(module):
    """The index in LAYERS of ``module``: its own entry, or its nearest package's."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        for index, (_, members) in enumerate(LAYERS):
            if prefix in members:
                return index
    raise AssertionError(f"{module} is in no layer of LAYERS: add it where it belongs")


def upward_imports(graph):
    return sorted(
        f"{name} ({LAYERS[layer_of(name)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for name, targets in graph.items()
        for target in targets
        if layer_of(target) < layer_of(name)
    )


def test_the_layer_check_finds_an_upward_import():
    graph = {"isvapp.storage.models": {"isvapp.domain.lifecycle"}, "isvapp.domain.lifecycle": {"isvapp.storage.models"}}
    assert upward_imports(graph) == ["isvapp.storage.models (storage) imports isvapp.domain.lifecycle (the domain)"]


def test_every_import_points_down_the_layers():
    known = modules()
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    assert upward_imports(graph) == []


def test_the_public_paths_a_merchant_names_still_work(app):
    """What merchants write in configuration and in their own code, from before the layout moved."""
    import importlib.metadata

    import isvapp.provisioning as public
    from isvapp.background import provisioning
    from isvapp.market import simulator

    for name in (
        "Provisioner",
        "TemplateProvisioner",
        "WebhookProvisioner",
        "HookEvent",
        "verify_webhook",
        "webhook_signature",
    ):
        assert getattr(public, name) is getattr(provisioning, name), name
    for path in ("isvapp.provisioning:WebhookProvisioner", "isvapp.provisioning:TemplateProvisioner"):
        assert isinstance(provisioning.load_provisioner({"PROVISIONER": path}), public.Provisioner), path
    assert app.config["PROVISIONER"] == "isvapp.provisioning:TemplateProvisioner"
    (script,) = [e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "isvapp-sim"]
    assert script.load() is simulator.main


# --- the tests' own modules ---------------------------------------------------------------------

TESTS = Path(__file__).resolve().parent
# A config value naming an object in a test module ("tests.test_jobs:Recorder") imports it too.
NAMED_IN_A_STRING = re.compile(r"tests\.(conftest|test_\w+)(?::[\w.]+)?")


def imported_test_modules(source, own):
    """The test modules (and conftest) that ``source`` imports, anywhere in it, or names in a
    string for the app to import; ``own`` (the module's own name) is left out."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module != "tests":
                names = [node.module or ""]
            elif node.module in (None, "tests"):
                names = [f"tests.{alias.name}" for alias in node.names]  # from . import test_x
            else:
                names = [f"tests.{node.module}"]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            named = NAMED_IN_A_STRING.fullmatch(node.value)
            names = [f"tests.{named.group(1)}"] if named else []
        else:
            continue
        for name in names:
            module = name.removeprefix("tests.")
            if module != name and (module == "conftest" or module.startswith("test_")):
                found.add(module.split(".")[0])
    return found - {own}


def test_the_test_import_check_finds_each_form():
    source = """
from .test_produce_g2 import new_order
from tests.test_kit import TENANT
from . import test_dashboard
import tests.test_alerts
from .conftest import KEY
from .helpers import KEY
from .live import LiveServer
def f():
    from .test_license import WIRE
CONFIG = {"PROVISIONER": "tests.test_jobs:Recorder", "OWN": "tests.test_self:thing"}
"""
    assert imported_test_modules(source, "test_self") == {
        "test_produce_g2",
        "test_kit",
        "test_dashboard",
        "test_alerts",
        "conftest",
        "test_license",
        "test_jobs",
    }


def test_no_test_module_imports_another():
    """Shared helpers live in tests/helpers.py (and live.py, pgctl.py), shared fixtures in
    conftest.py: a test module that imports another runs that module's imports (aiosmtpd, a
    browser driver) just to be collected, and couples two files that change for different
    reasons. conftest.py is pytest's to load, never imported."""
    found = {
        path.name: sorted(imported_test_modules(path.read_text(encoding="utf-8"), path.stem))
        for path in sorted(TESTS.glob("*.py"))
    }
    assert len(found) > 40 and "helpers.py" in found  # the walk sees the suite
    assert {name: named for name, named in found.items() if named} == {}
