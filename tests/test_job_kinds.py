"""Every job kind the code enqueues has a handler registered on the app: a kind whose module is
missing from create_app's list (isvapp/__init__.py, register_jobs) would be queued, claimed, and
go dead with "no handler for job kind" only once it runs.

The kinds are read from the source, as a reader would grep them: each call of the queue's
``jobs.enqueue(kind, ...)`` and ``jobs.job_row(kind, ...)``, its kind a string, a module constant
(``uploads.KIND``), or taken from pairs handed down a parameter (lifecycle's ``more_jobs``: the
``(kind, payload)`` pairs its module appends, or any caller passes by that name)."""

import ast
import importlib
from pathlib import Path

import isvapp

QUEUE = "isvapp.background.jobs"
CALLS = {"enqueue", "job_row"}


def _parents(tree):
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            child.parent = node


def _enclosing(node, kinds):
    while node is not None and not isinstance(node, kinds):
        node = getattr(node, "parent", None)
    return node


def _passed_through(name, call):
    """The parameter ``name`` (the kind's variable at ``call``) is iterated from, when the kind is
    the first of pairs handed down a parameter of the enclosing function; else None."""
    function = _enclosing(call, (ast.FunctionDef, ast.AsyncFunctionDef))
    loop = _enclosing(call, (ast.comprehension, ast.For, ast.ListComp, ast.GeneratorExp, ast.SetComp))
    generators = getattr(loop, "generators", None) or ([loop] if isinstance(loop, ast.For) else [])
    for generator in generators:
        target = generator.target
        first = target.elts[0] if isinstance(target, ast.Tuple) and target.elts else None
        if isinstance(first, ast.Name) and first.id == name and isinstance(generator.iter, ast.Name):
            parameters = {a.arg for a in function.args.args + function.args.kwonlyargs} if function else set()
            if generator.iter.id in parameters:
                return generator.iter.id
    return None


def _pairs(node):
    """String kinds that are the first of (kind, payload) pairs in ``node``: a pair, or a list or
    tuple of pairs."""
    items = node.elts if isinstance(node, (ast.List, ast.Tuple)) and not _is_pair(node) else [node]
    return {item.elts[0].value for item in items if _is_pair(item)}


def _is_pair(node):
    return (
        isinstance(node, ast.Tuple)
        and len(node.elts) == 2
        and isinstance(node.elts[0], ast.Constant)
        and isinstance(node.elts[0].value, str)
    )


def _named_kinds(node, module, call, constant):
    """The kinds ``node`` can be: a string, a module constant, either branch of ``a if c else b``,
    or a local variable assigned once from one of those in the enclosing function; else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        branches = [_named_kinds(branch, module, call, constant) for branch in (node.body, node.orelse)]
        return branches[0] | branches[1] if all(branches) else None
    if isinstance(node, (ast.Name, ast.Attribute)) and isinstance(constant(module, ast.unparse(node)), str):
        return {constant(module, ast.unparse(node))}
    function = _enclosing(call, (ast.FunctionDef, ast.AsyncFunctionDef))
    if isinstance(node, ast.Name) and function is not None:
        assigned = [
            a.value
            for a in ast.walk(function)
            if isinstance(a, ast.Assign) and any(isinstance(t, ast.Name) and t.id == node.id for t in a.targets)
        ]
        if len(assigned) == 1:
            return _named_kinds(assigned[0], module, call, constant)
    return None


def enqueued_kinds(sources, constant):
    """(kinds, problems) in ``sources`` ({module: source}); ``constant(module, expression source)``
    gives a named kind's value (or None)."""
    kinds, problems, through, trees = set(), [], set(), {}
    for module, text in sorted(sources.items()):
        trees[module] = tree = ast.parse(text)
        _parents(tree)
        if module == QUEUE:
            continue  # the queue's own functions hand their caller's kind on
        for call in [n for n in ast.walk(tree) if isinstance(n, ast.Call)]:
            func = call.func
            if not (
                isinstance(func, ast.Attribute)
                and func.attr in CALLS
                and isinstance(func.value, ast.Name)
                and func.value.id == "jobs"
            ):
                continue
            arg = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "kind"), None)
            where = f"{module}:{call.lineno}"
            named = _named_kinds(arg, module, call, constant)
            if named:
                kinds |= named
            elif isinstance(arg, ast.Name) and _passed_through(arg.id, call):
                through.add((module, _passed_through(arg.id, call)))
            else:
                problems.append(f"{where}: which kind does {ast.unparse(call)[:60]} enqueue?")
    for module, parameter in through:
        for node in ast.walk(trees[module]):  # the pairs its own module appends
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "append" and node.args:
                kinds |= _pairs(node.args[0])
        for tree in trees.values():  # and any caller hands down by the parameter's name
            for node in ast.walk(tree):
                if isinstance(node, ast.keyword) and node.arg == parameter:
                    kinds |= _pairs(node.value)
    return kinds, problems


def runtime_constant(module, expression):
    """The value of a module-level name (``KIND``) or a module's attribute (``uploads.KIND``)."""
    value = importlib.import_module(module)
    try:
        for part in expression.split("."):
            value = getattr(value, part)
    except AttributeError:
        return None
    return value


def isvapp_sources():
    """{module name: source} of every isvapp module but the migrations."""
    package = Path(isvapp.__file__).resolve().parent
    found = {}
    for path in package.rglob("*.py"):
        if "migrations" not in path.parts:
            parts = path.relative_to(package.parent).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path.read_text(encoding="utf-8")
    return found


def test_every_enqueued_job_kind_has_a_handler_on_the_app(app):
    kinds, problems = enqueued_kinds(isvapp_sources(), runtime_constant)
    assert problems == []
    assert {
        "provision",
        "fetch_order",
        "usage_push",
        "prune",
        "alert",
        "direct_alert",
        "license_upload",
        "license_usage",
    } <= kinds
    handlers = app.extensions["isvapp_jobs"].handlers
    assert sorted(kinds - set(handlers)) == [], "enqueued with no handler: add its module to register_jobs"


def test_the_scan_finds_every_way_a_kind_is_named_and_says_when_it_cannot():
    sources = {
        QUEUE: "def enqueue(kind, key):\n    return job_row(kind, key)\n",
        "isvapp.a": "KIND = 'named'\ndef f():\n    jobs.enqueue('literal', 1)\n    jobs.enqueue(KIND, 2)\n",
        "isvapp.b": (
            "def bind(more_jobs=()):\n    return [jobs.job_row(k, 1, p) for k, p in more_jobs]\n"
            "def f():\n    more = []\n    more.append(('appended', {}))\n    return bind(more)\n"
        ),
        "isvapp.c": "def g(x):\n    lifecycle.record(more_jobs=[('handed', {})])\n    jobs.enqueue(x.kind, 3)\n",
        "isvapp.d": "def h(y):\n    kind = KIND if y else 'either'\n    jobs.enqueue(kind, 4)\n",
    }
    kinds, problems = enqueued_kinds(sources, lambda module, name: {"KIND": "named"}.get(name))
    assert kinds == {"literal", "named", "appended", "handed", "either"}
    assert problems == ["isvapp.c:3: which kind does jobs.enqueue(x.kind, 3) enqueue?"]


def test_a_kind_missing_from_the_list_is_found(app):
    """What the first test catches, shown: a handler taken off the app's registry."""
    kinds, _ = enqueued_kinds(isvapp_sources(), runtime_constant)
    handlers = dict(app.extensions["isvapp_jobs"].handlers)
    del handlers["fetch_order"]
    assert sorted(kinds - set(handlers)) == ["fetch_order"]
