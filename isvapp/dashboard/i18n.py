"""English and Simplified Chinese for the pages: the browser's language, or the one chosen.

The Chinese is a gettext catalog, isvapp/translations/zh/LC_MESSAGES/messages.po, read through
Flask-Babel; templates call ``_`` and Python calls ``gettext``, both flask_babel's gettext (plain
strings, escaped by Jinja like any other value). scripts/translations.sh extracts the msgids
(isvapp/translations/babel.cfg), merges them into messages.po and compiles messages.mo.

messages.mo is committed next to messages.po, not compiled when the app starts: the app then
never writes into its package or instance folder (a read-only container, a wheel installed into a
root-owned site-packages, several gunicorn workers starting at once would each make that fragile),
a broken .po fails in CI instead of at a merchant's first start, and ``pip install`` ships the
catalog as package data. tests/test_i18n.py fails when messages.mo and messages.po disagree.
"""

import ast
import importlib
import inspect
import os
import re
import textwrap

from flask import g, request
from flask_babel import Babel, gettext, refresh  # noqa: F401  gettext: the pages' _ and the Python callers'

from .. import texts

LANGUAGES = ("en", "zh")
LOCALES = {"en": "en", "zh": "zh"}  # a language of the pages -> its catalog's locale (translations/zh)
COOKIE = "lang"
TRANSLATIONS = texts.TRANSLATIONS


def init_app(app):
    # configure_jinja=False: Jinja's newstyle gettext would mark every translation, and every
    # untranslated dynamic text (a health detail quoting an error), as safe HTML.
    Babel(
        app,
        locale_selector=locale,
        default_translation_directories=TRANSLATIONS,
        default_locale="en",
        configure_jinja=False,
    )


def choose():
    chosen = request.args.get("lang") or request.cookies.get(COOKIE)
    if chosen not in LANGUAGES:
        chosen = request.accept_languages.best_match(["en", "zh", "zh-CN", "zh-Hans"], default="en")[:2]
    g.lang = chosen
    refresh()  # Flask-Babel caches the locale on g, which outlives a request inside an app context
    return chosen


def locale():
    """Flask-Babel's locale selector: the language choose() picked for this request."""
    return LOCALES[g.lang if g.get("lang") in LANGUAGES else choose()]


def remember(response):
    """Keep a language picked with ?lang= for the next pages."""
    picked = request.args.get("lang")
    if picked in LANGUAGES:
        response.set_cookie(
            COOKIE, picked, max_age=365 * 86400, httponly=True, samesite="Lax", secure=request.is_secure
        )
    return response


# --- msgids that live in Python data ---------------------------------------------------------------


def python_msgids():
    """[(msgid, where)] for the texts the pages translate that are not a literal in a _() call:
    labels, causes, states and chart names kept in Python data. pybabel's extractors cannot see
    them; babel.cfg extracts them with extract_python_data below, and the tests check them."""
    from ..background import usage
    from ..storage import models
    from . import charts, diagnosis, golive, labels

    found = [(label, "golive.CHECKLISTS") for items in golive.CHECKLISTS.values() for _, label, _, _ in items]
    found += [(label, "golive.PRODUCT_LABELS") for label in golive.PRODUCT_LABELS.values()]
    found += [(text, "golive.health") for text in _call_strings(golive, "Health", (1, 2, 3, 4))]  # every Health()
    found += [(sentence, "diagnosis.CAUSES") for *_, sentence in diagnosis.CAUSES]
    found += [(text, "charts") for f in charts.CHARTS.values() for text in _call_strings(f, "_chart", (1, 3))]
    found += [(text, "charts series") for f in charts.CHARTS.values() for text in _assigned_strings(f, "series")]
    for table in LABEL_TABLES:
        found += [(label, f"labels.{table}") for label in getattr(labels, table).values()]
    found += [(label, "labels.FIELD_VALUES") for values in labels.FIELD_VALUES.values() for label in values.values()]
    found += [(label, "usage.timing") for label in (usage.ON_TIME, usage.LATE, usage.NOT_DUE)]
    found += [(f"details {state}", "views.field_value") for state in _constants(models.DetailsState)]
    for kind in (models.InstanceState, models.LicenseState, models.KitState, models.UploadState):
        found += [(state, f"models.{kind.__name__}") for state in _constants(kind)]
    found += [(text, "oddities.note") for module in noting_modules() for text in _call_strings(module, "note", (0,))]
    seen, unique = set(), []
    for text, where in found:
        if words(text) and text not in seen:
            seen.add(text)
            unique.append((text, where))
    return unique


LABEL_TABLES = (
    "FIELD_LABELS",
    "EVENT_LABELS",
    "JOB_LABELS",
    "JOB_STATE_LABELS",
    "RESULT_LABELS",
    "LICENSE_CODE_STATES",
    "ROLE_LABELS",
    "USAGE_STATE_LABELS",
    "NOTICE_LABELS",
)


def words(text):
    """What of a msgid is words, its ``%(name)s`` parameters left out: "%(keys)s" has none, and is
    not a msgid to translate."""
    return re.sub(r"%\(\w+\)s", "", text or "").strip(" ,.:;()")


def noting_modules():
    """The modules that note a request's oddities (isvapp.koo.oddities.note): every module of
    isvapp whose source calls it."""
    package = os.path.dirname(TRANSLATIONS)
    found = []
    for folder, _, files in os.walk(package):
        for name in sorted(files):
            if name.endswith(".py") and "migrations" not in folder:
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    if "oddities.note(" in f.read():
                        relative = os.path.relpath(path, os.path.dirname(package))[: -len(".py")]
                        found.append(importlib.import_module(relative.replace(os.sep, ".")))
    return found


def extract_python_data(fileobj, keywords, comment_tags, options):
    """A Babel extraction method (babel.cfg) yielding python_msgids(), each with its origin."""
    for text, where in python_msgids():
        yield 0, None, text, [where]


def _constants(kind):
    return [value for name, value in vars(kind).items() if name.isupper() and isinstance(value, str)]


def _strings(node):
    """The texts an expression can be: a literal, either branch of ``a if c else b``, ``x or y``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _strings(node.body) + _strings(node.orelse)
    if isinstance(node, ast.BoolOp):
        return [text for value in node.values for text in _strings(value)]
    return []


def _tree(function):
    return ast.parse(textwrap.dedent(inspect.getsource(function)))


def _call_strings(function, callee, positions):
    """Literal arguments at ``positions`` of calls to ``callee`` (a name or an attribute) in ``function``."""
    texts = []
    for node in ast.walk(_tree(function)):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name == callee:
                texts += [text for i in positions if i < len(node.args) for text in _strings(node.args[i])]
    return texts


def _assigned_strings(function, variable):
    """Every literal in the values ``function`` assigns to ``variable``."""
    return [
        n.value
        for node in ast.walk(_tree(function))
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == variable for t in node.targets)
        for n in ast.walk(node.value)
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]
