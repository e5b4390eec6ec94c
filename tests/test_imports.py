"""No two modules of isvapp import each other, directly or round a longer loop, counting the
imports made inside functions too (a lazy import hides a circle; it does not remove it). Two
modules that need each other want what both need moved below them."""

import ast
import os
import re
import subprocess
import sys
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
        len(graph) > 40 and "isvapp.background.channels" in graph["isvapp.dashboard.golive"]
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


# The stand-ins (isvapp/standins: the fake marketplace, the fake IdP, the simulator) are tools: in
# the layer order above they may import what lies below them (market's paths, storage, koo), and
# besides that rule nothing outside them may import them, the factory included. Their commands
# reach the command line through setup.cfg's flask.commands entry points.
STANDINS = "isvapp.standins"


def imports_of_the_standins(graph):
    return sorted(
        f"{name} imports {target}"
        for name, targets in graph.items()
        if not (name == STANDINS or name.startswith(STANDINS + "."))
        for target in targets
        if target == STANDINS or target.startswith(STANDINS + ".")
    )


def test_the_stand_in_check_finds_a_runtime_import():
    graph = {
        "isvapp": {"isvapp.standins.fakemarket"},
        "isvapp.standins.simulator.login": {"isvapp.standins.fakeidp"},
    }
    assert imports_of_the_standins(graph) == ["isvapp imports isvapp.standins.fakemarket"]


def test_no_runtime_module_imports_the_stand_ins():
    known = modules()
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    assert "isvapp.standins.fakeidp" in graph["isvapp.standins.simulator.login"]  # the walk sees them
    assert imports_of_the_standins(graph) == []


STAND_IN_COMMANDS = {"fake-market", "fake-idp", "fake-idp-tenant", "simulate"}


@pytest.mark.live  # a fresh interpreter
def test_the_production_app_holds_no_stand_in_and_loads_none(tmp_path):
    """The app gunicorn serves, built as wsgi.py builds it in a fresh interpreter: none of the
    stand-ins' modules is imported and none of their commands is the app's own."""
    probe = (
        "import sys; from isvapp import create_app; app = create_app(); "
        "print(sorted(m for m in sys.modules if m.startswith('isvapp.standins'))); "
        f"print(sorted(set(app.cli.commands) & set({sorted(STAND_IN_COMMANDS)!r})))"
    )
    env = {**os.environ, "ISVAPP_INSTANCE_PATH": str(tmp_path / "instance"), "ISVAPP_SECRET_KEY": "s" * 40}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "[]"], result.stdout


def test_the_command_line_has_the_stand_ins_commands():
    """Flask's command line loads them from the entry points (pip install -e . registers them)."""
    import importlib.metadata

    from isvapp.standins import fakeidp, fakemarket, simulator
    from isvapp.standins.simulator import demotenant

    found = {e.name: e.load() for e in importlib.metadata.entry_points(group="flask.commands")}
    assert {name: found.get(name) for name in STAND_IN_COMMANDS} == {
        "fake-market": fakemarket.fake_market_command,
        "fake-idp": fakeidp.fake_idp_command,
        "fake-idp-tenant": demotenant.fake_idp_tenant_command,
        "simulate": simulator.simulate_command,
    }


# One shape for every blueprint (flaskr, cookiecutter-flask): ``bp = Blueprint(...)`` in a package's
# __init__.py, the routes in that package's views.py, which __init__.py imports once bp exists. Two
# top-level modules of a route or two are a blueprint each, whole.
ONE_MODULE_BLUEPRINTS = {"isvapp.health", "isvapp.monitoring"}
ROUTE_CALLS = {"route", "get", "post", "put", "patch", "delete", "add_url_rule"}


def blueprint_shape_problems(sources):
    """What breaks the shape in ``sources`` ({module name: (is it a package, its source)})."""
    problems = []
    for name, (is_package, text) in sorted(sources.items()):
        if name in ONE_MODULE_BLUEPRINTS:
            continue
        calls = [node for node in ast.walk(ast.parse(text)) if isinstance(node, ast.Call)]
        makes = any(getattr(call.func, "id", getattr(call.func, "attr", None)) == "Blueprint" for call in calls)
        routes = any(
            isinstance(call.func, ast.Attribute)
            and call.func.attr in ROUTE_CALLS
            and isinstance(call.func.value, ast.Name)
            and call.func.value.id == "bp"
            for call in calls
        )
        if makes and not is_package:
            problems.append(f"{name} makes a Blueprint: bp belongs in its package's __init__.py")
        if makes and is_package and f"{name}.views" not in sources:
            problems.append(f"{name} makes a Blueprint but has no views.py for its routes")
        if routes and not name.endswith(".views"):
            problems.append(f"{name} adds routes to bp: they belong in views.py")
    return problems


def test_the_shape_check_finds_a_blueprint_out_of_shape():
    sources = {
        "isvapp.pages": (True, "from . import views"),
        "isvapp.pages.views": (False, "bp = Blueprint('pages', __name__)\n@bp.get('/')\ndef home(): pass"),
        "isvapp.market": (True, "bp = Blueprint('m', __name__)\nbp.add_url_rule('/', 'x', print)"),
    }
    assert blueprint_shape_problems(sources) == [
        "isvapp.market makes a Blueprint but has no views.py for its routes",
        "isvapp.market adds routes to bp: they belong in views.py",
        "isvapp.pages.views makes a Blueprint: bp belongs in its package's __init__.py",
    ]


def test_every_blueprint_is_bp_in_its_packages_init_with_its_routes_in_views():
    sources = {name: (path.name == "__init__.py", path.read_text(encoding="utf-8")) for name, path in modules().items()}
    packages = {n for n, (is_package, text) in sources.items() if is_package and "Blueprint(" in text}
    assert {"isvapp.produce", "isvapp.dashboard", "isvapp.login", "isvapp.productapi"} <= packages  # it sees them
    assert blueprint_shape_problems(sources) == []


def test_the_public_paths_a_merchant_names_still_work(app):
    """What merchants write in configuration and in their own code, from before the layout moved."""
    import importlib.metadata

    import isvapp.provisioning as public
    from isvapp.background import provisioning
    from isvapp.standins import simulator

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
