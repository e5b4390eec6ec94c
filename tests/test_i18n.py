"""The pages' Chinese: a gettext catalog read through Flask-Babel.

Every msgid the pages translate, literal in a template or held in Python data, has a msgstr in
isvapp/translations/zh/LC_MESSAGES/messages.po; the committed messages.mo says the same; the
extraction (babel.cfg) sees the Python data, so `pybabel update` never turns them obsolete.
"""

import ast
import re
from pathlib import Path

import flask_babel
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask import render_template_string
from isvapp.dashboard import charts, diagnosis, golive, i18n, labels, views
from isvapp.extensions import db
from isvapp.storage import models
from jinja2 import Environment

PACKAGE = Path(i18n.__file__).resolve().parents[1]
TEMPLATES = PACKAGE / "dashboard" / "templates"
MESSAGES = PACKAGE / "translations" / "zh" / "LC_MESSAGES"
CHINESE = re.compile(r"[\u4e00-\u9fff]")


def catalog():
    with open(MESSAGES / "messages.po", "rb") as f:
        return read_po(f)


def missing_chinese(msgids):
    """The msgids without a usable msgstr: absent, empty, or fuzzy (compile leaves fuzzy ones out)."""
    po = catalog()
    missing = []
    for msgid in msgids:
        message = po.get(msgid)
        if message is None or not message.string or message.fuzzy:
            missing.append(msgid)
    return missing


def template_literals():
    env = Environment(extensions=["jinja2.ext.i18n"])
    found, calls = set(), 0
    for path in sorted(TEMPLATES.rglob("*.html")):
        source = path.read_text(encoding="utf-8")
        calls += len(re.findall(r"""\b_\(\s*['"]""", source))
        found |= {message for _, _, message in env.extract_translations(source) if isinstance(message, str)}
    return found, calls


def test_every_literal_in_the_templates_has_chinese():
    found, calls = template_literals()
    assert calls >= 150 and len(found) >= 100, (calls, len(found))  # the extraction saw the pages
    assert {"Overview", "Log in", "Go live", "Real", "Test"} <= found
    assert not missing_chinese(sorted(found)), missing_chinese(sorted(found))


def health_texts(app):
    """Labels, states and fixed details/fixes golive.health() gives on this app (fresh: warnings)."""
    literals = {
        node.value
        for node in ast.walk(ast.parse(Path(golive.__file__).read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    with app.app_context():
        items = golive.health(app, app.extensions["isvapp"])
    texts = [t for h in items for t in (h.label, h.state)]
    texts += [t for h in items for t in (h.detail, h.fix) if i18n.words(t) and t in literals]  # not "%(keys)s"
    assert len(items) >= 8 and any(h.fix for h in items)
    return texts


def chart_texts(app):
    """Every text a chart passes to gettext: titles and series names, recorded by drawing them."""
    seen = []

    def record(text):
        seen.append(text)
        return text

    with app.app_context():
        for draw in charts.CHARTS.values():
            draw("Asia/Shanghai", record)
        db.session.remove()
    assert len(seen) >= 8
    return seen


def python_data(app):
    data = [label for items in golive.CHECKLISTS.values() for _, label, _, _ in items]
    data += list(golive.PRODUCT_LABELS.values())
    data += [sentence for *_, sentence in diagnosis.CAUSES]
    data += list(labels.FIELD_LABELS.values())
    data += list(models.InstanceState.ALL) + list(models.LicenseState.ALL)
    data += [models.KitState.ACTIVE, models.KitState.DELETED, models.KitState.REVOKED]
    data += [
        f"details {s}"
        for s in (
            models.DetailsState.PENDING,
            models.DetailsState.FETCHED,
            models.DetailsState.INLINE,
            models.DetailsState.FAILED,
        )
    ]
    data += ["Yes", "No"]
    return data + health_texts(app) + chart_texts(app)


def test_every_msgid_held_in_python_data_has_chinese(app):
    data = python_data(app)
    assert {
        "New purchase",
        "Kit (joint operation)",
        "ACTIVE",
        "REVOKED",
        "Callbacks per day, by result",
        "refused (signature, fields)",
        "Background worker",
        "details pending",
        "Protocol generation",
    } <= set(data)
    missing = missing_chinese(dict.fromkeys(data))
    assert not missing, missing


def extracted():
    """What `pybabel extract -F isvapp/translations/babel.cfg` (scripts/translations.sh) finds."""
    with open(PACKAGE / "translations" / "babel.cfg", encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f)
    assert "isvapp.dashboard.i18n:extract_python_data" in {method for _, method in method_map}
    return {message for _, _, message, *_ in extract_from_dir(str(PACKAGE), method_map, options_map)}


def test_the_extraction_sees_the_python_data_so_an_update_keeps_it(app):
    """babel.cfg's python_data method (i18n.python_msgids) and the ordinary extractors together
    find every msgid: one they missed would be commented out (#~) by `pybabel update`."""
    found = extracted()
    not_extracted = [t for t in dict.fromkeys(python_data(app)) if t not in found]
    assert not not_extracted, not_extracted
    assert template_literals()[0] <= found
    missing = missing_chinese(sorted(found))
    assert not missing, missing


def test_the_compiled_catalog_says_what_the_po_says():
    po = catalog()
    with open(MESSAGES / "messages.mo", "rb") as f:
        mo = read_mo(f)
    wanted = {m.id: m.string for m in po if m.id and m.string and not m.fuzzy}
    compiled = {m.id: m.string for m in mo if m.id}
    assert compiled == wanted, (
        "messages.mo is not messages.po compiled: run scripts/translations.sh compile and commit messages.mo",
        sorted(set(compiled.items()) ^ set(wanted.items()))[:10],
    )
    assert len(wanted) >= 180 and po.locale_identifier == "zh" and not po.fuzzy
    assert all(CHINESE.search(s) or s in {"License", "SaaS", "SECRET_KEY", "HTTPS"} for s in wanted.values())


def test_templates_and_python_translate_through_flask_babel(app):
    assert i18n.gettext is flask_babel.gettext and not hasattr(i18n, "ZH")
    with app.test_request_context("/admin/?lang=zh"):
        i18n.choose()
        helpers = views._template_helpers()
        assert helpers["_"] is flask_babel.gettext
        assert flask_babel.get_locale().language == "zh"
        assert (
            flask_babel.gettext("Overview") == "概览"
            and views.field_value(type("R", (), {"trial": True})(), "trial") == "是"
        )
        # plain strings: Jinja escapes a translation and an untranslated dynamic text alike
        assert render_template_string("{{ _(t) }}", t="failed: <b>x</b>") == "failed: &lt;b&gt;x&lt;/b&gt;"
        [cause] = [s for s in diagnosis.SENTENCES.values() if "<your domain>" in s]
        assert "https://&lt;域名&gt;/produce" in render_template_string("{{ _(t) }}", t=cause)
    with app.test_request_context("/admin/?lang=en"):
        i18n.choose()
        assert flask_babel.gettext("Overview") == "Overview"


def test_a_page_asked_for_in_chinese_is_in_chinese(browser):
    page = browser.get("/admin/?lang=zh").get_data(as_text=True)
    assert "<h1>概览</h1>" in page and "各状态实例数" in page and 'alt="每日回调（按结果）"' in page
    assert "<h1>Overview</h1>" not in page
    later = browser.get("/admin/go-live").get_data(as_text=True)  # the cookie keeps it
    assert "上线检查" in later and "后台任务进程" in later and "Background worker" not in later
    svg = browser.get("/admin/charts/callbacks.svg?lang=zh").get_data(as_text=True)
    assert "每日回调（按结果）" in svg and "成功" in svg
    assert "<h1>Overview</h1>" in browser.get("/admin/?lang=en").get_data(as_text=True)


def test_the_language_is_chosen_again_for_each_request_in_one_app_context(app, browser):
    """Flask-Babel caches the locale on g, which a test's (or a command's) app context keeps."""
    with app.app_context():
        assert "<h1>概览</h1>" in browser.get("/admin/?lang=zh").get_data(as_text=True)
        assert "<h1>Overview</h1>" in browser.get("/admin/?lang=en").get_data(as_text=True)
        assert "<h1>Overview</h1>" in browser.get("/admin/", headers={"Accept-Language": "zh-CN"}).get_data(
            as_text=True
        )
        browser.delete_cookie("lang")
        assert "<h1>概览</h1>" in browser.get("/admin/", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)


@pytest.mark.parametrize(
    "header, word", [("zh-CN,zh;q=0.9", "登录"), ("zh-Hans", "登录"), ("en-US,en", "Log in"), ("fr-FR", "Log in")]
)
def test_accept_language_picks_the_login_pages_language(client, header, word):
    assert word in client.get("/admin/login", headers={"Accept-Language": header}).get_data(as_text=True)
