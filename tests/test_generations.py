"""The generation and replay-scope values (isvapp/koo/generations.py): the exact strings the
database holds, and nowhere else spelt out in isvapp's source.

A generation written as a literal ("G1", startswith("LIC"), "g1kit") outside that module is a rule
kept in two places; the scan below fails on the first new one, as test_imports.py fails on an
import that points up."""

import ast
import json
from pathlib import Path

import isvapp
import pytest
from isvapp.koo.generations import Generation, ReplayScope

pytestmark = pytest.mark.any_database  # pure values and a source scan

PACKAGE = Path(isvapp.__file__).resolve().parent
HOME = PACKAGE / "koo" / "generations.py"

# What instances.generation and callbacks.generation have held since the first migration
# (storage/models.py), and signed_requests.scope: each must parse, to the same text.
STORED_GENERATIONS = ("G1", "G2", "LIC1", "LIC2")
STORED_SCOPES = ("g2", "kit", "g1", "g1kit")

# Spellings that name something else where they stand: the routes' endpoint names (views.py) and
# the simulator's --generation choice, which are a command line's words, not stored values. "kit"
# is not scanned at all: it is also a path segment, a body limit's name and a checklist's place.
NOT_A_GENERATION = {
    "produce/views.py": {"g1", "g2"},
    "standins/simulator/__init__.py": {"g1", "g2"},
}
SPELLINGS = {g.value for g in Generation} | {s.value for s in ReplayScope if s is not ReplayScope.KIT}


def test_every_stored_value_parses_to_itself():
    assert [Generation(v) for v in STORED_GENERATIONS] == list(Generation)
    assert [ReplayScope(v) for v in STORED_SCOPES] == list(ReplayScope)
    for member in (*Generation, *ReplayScope):
        # What the database binds, a page renders, a webhook sends and a replay token hashes.
        assert (str(member), f"{member}", "|".join((member, "x"))) == (member.value, member.value, member.value + "|x")
        assert json.dumps({"generation": member}) == json.dumps({"generation": member.value})


@pytest.mark.parametrize("value", ["G3", "g1", "lic1", "LIC", "", "G1 "])
def test_an_unknown_generation_is_refused(value):
    with pytest.raises(ValueError):
        Generation(value)


def test_what_each_generation_is():
    assert {g: (g.is_license, g.product_type, g.signing, g.fetches_order_details) for g in Generation} == {
        Generation.G1: (False, "saas", Generation.G1, False),
        Generation.G2: (False, "saas", Generation.G2, True),
        Generation.LIC1: (True, "license", Generation.G1, False),
        Generation.LIC2: (True, "license", Generation.G2, True),
    }
    assert {s: (s.is_kit, s.signing) for s in ReplayScope} == {
        ReplayScope.G2: (False, Generation.G2),
        ReplayScope.KIT: (True, Generation.G2),
        ReplayScope.G1: (False, Generation.G1),
        ReplayScope.G1_KIT: (True, Generation.G1),
    }


def spelt_generations(path):
    """The string literals in ``path`` that spell a generation or a scope: whole ("G1"), as a prefix
    of a longer text (f"g1kit:{name}"), or a piece of one (startswith("LIC"))."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or len(node.value) < 2:
            continue
        text = node.value
        if any(text == v or text.startswith(v + ":") or v.startswith(text) for v in SPELLINGS):
            found.append((node.lineno, text))
    return found


def test_no_generation_is_spelt_outside_its_enum():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if path == HOME or "migrations" in path.parts:
            continue
        allowed = NOT_A_GENERATION.get(relative, set())
        found += [
            f"isvapp/{relative}:{line}: {text!r}" for line, text in spelt_generations(path) if text not in allowed
        ]
    assert not found, "use isvapp.koo.generations (Generation, ReplayScope) instead of:\n" + "\n".join(found)
