"""The Chinese pages in Chinese: text built in Python (go-live details, alerts, a callback's warnings
and note), states and kinds, and the words that were wrong. Texts are kept as msgids with named
parameters (isvapp.texts) and rendered when read, so a stored alert reads in its reader's language.
The whole walk in Chromium is tests/test_tour.py's Chinese tour."""

import ast
import re
from pathlib import Path

import isvapp.settings
import pytest
from isvapp.background import alerts, status
from isvapp.extensions import db
from isvapp.storage.models import Alert, Callback, Job, LicenseCode, utcnow
from sqlalchemy import select

from .helpers import new_order

PACKAGE = Path(alerts.__file__).resolve().parents[1]


def visible(html):
    """The page's text outside tags, for "is this word shown" checks."""
    inline = re.sub(r"</?(?:span|b|small|code)\b[^>]*>", "", html)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", inline))


def test_go_live_details_read_in_the_readers_language(app, browser):  # noqa: F811
    with app.app_context():
        status.report("worker_heartbeat", {"worker": "w1"}, now=utcnow())
    english = visible(browser.get("/admin/go-live?lang=en").get_data(as_text=True))
    chinese = visible(browser.get("/admin/go-live?lang=zh").get_data(as_text=True))
    assert re.search(r"last heartbeat \d+ s ago", english) and "GiB free" in english
    assert re.search(r"最近心跳在 \d+ 秒前", chinese) and "GiB free" not in chinese and "剩余" in chinese
    assert "last heartbeat" not in chinese and "signed request" not in chinese
    assert "SECRET_KEY 太短或太简单" in chinese  # the test app's key; the fix names the command


@pytest.mark.parametrize("app_config", [{"ALERT_DISK_FREE_PCT": 10}])
def test_a_stored_alert_reads_in_the_readers_language_and_goes_out_in_alert_language(app, browser):  # noqa: F811
    with app.app_context():
        alerts.check_disk(path="/srv", usage=lambda path: (1000 * 2**20, 990 * 2**20, 10 * 2**20))
        row = db.session.execute(select(Alert)).scalar_one()
        assert row.subject == "Disk space is low" and row.message["params"]["percent"] == "1.0"
        to_channels = alerts.message_for_channels(row, app.extensions["isvapp"])  # ALERT_LANGUAGE: zh by default
        app.config["ALERT_LANGUAGE"] = "en"
        isvapp.settings.init_app(app)  # read once per app: read them again
        in_english = alerts.message_for_channels(row, app.extensions["isvapp"])
    assert to_channels[0] == "磁盘空间不足" and "剩余 1.0%" in to_channels[1]
    assert in_english[0] == "Disk space is low" and "has 1.0% free" in in_english[1]
    english = browser.get("/admin/alerts?lang=en").get_data(as_text=True)
    chinese = browser.get("/admin/alerts?lang=zh").get_data(as_text=True)
    assert "Disk space is low" in english and "磁盘空间不足" in chinese and "Disk space is low" not in chinese
    assert '<span translate="no">/srv</span>' in chinese  # the values are data, marked as such


def test_a_callbacks_warnings_and_note_read_in_the_readers_language(app, browser, market):  # noqa: F811
    market.g2({**new_order(business="warned"), "testFlag": "maybe"})
    [row] = market.rows(Callback, Callback.warnings.is_not(None))
    assert "testFlag: maybe is not 0 or 1; read as 0" in row.warnings  # the log's English words
    assert row.warning_notes[0] == [
        "%(field)s: %(value)s is not 0 or 1; read as 0",
        {"field": "testFlag", "value": "maybe"},
    ]
    chinese = visible(browser.get(f"/admin/callbacks/{row.id}?lang=zh").get_data(as_text=True))
    assert "testFlag：maybe 不是 0 或 1；按 0 处理" in chinese and "is not 0 or 1" not in chinese
    assert "客户端地址" in chinese and "remote" not in chinese
    listing = browser.get("/admin/callbacks?warned=1&lang=zh").get_data(as_text=True)
    assert 'title="testFlag：maybe 不是 0 或 1；按 0 处理"' in listing


def test_states_kinds_and_codes_read_in_chinese(app, browser, market):  # noqa: F811
    market.g2(new_order(business="stated"))
    with app.app_context():
        db.session.add(LicenseCode(code="PLSTATE", state="NORMAL"))
        db.session.execute(db.update(Job).where(Job.kind == "fetch_order").values(state="done", attempts=1))
        db.session.commit()
    overview = browser.get("/admin/?lang=zh").get_data(as_text=True)
    assert re.search(r"<li>正常: <b><a [^>]*>1</a></b>", overview) and "ACTIVE" not in visible(overview)
    instances = browser.get("/admin/instances?lang=zh").get_data(as_text=True)
    assert re.search(r'<option value="ACTIVE"\s*>正常</option>', instances)
    codes = visible(browser.get("/admin/license-codes?lang=zh").get_data(as_text=True))
    assert "使用中" in codes and "NORMAL" not in codes
    detail = visible(browser.get("/admin/instances/stated?lang=zh").get_data(as_text=True))
    assert "已完成，第 1 次尝试（最多 12 次）" in detail and "done (" not in detail
    assert "获取订单详情" in detail and "已创建" in detail  # the job's and the event's kinds


def test_name_is_a_name_and_the_login_asks_for_a_user_name(client, browser):  # noqa: F811
    tokens = browser.get("/admin/api-tokens?lang=zh").get_data(as_text=True)
    assert "<th>名称</th>" in tokens and "用户名" not in tokens
    login = client.application.test_client().get("/admin/login?lang=zh").get_data(as_text=True)
    assert "用户名" in login


def calls(tree, names):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name in names:
                yield node


def is_literal(node):
    """A literal msgid: a str, N_("..."), or either branch of ``a if c else b`` being one."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "N_":
        return all(is_literal(arg) for arg in node.args)
    if isinstance(node, ast.IfExp):
        return is_literal(node.body) and is_literal(node.orelse)
    if isinstance(node, ast.Attribute) and node.attr == "msgid":
        return True  # a Text's msgid: a literal where the Text was made (config.secret_key_problem_text)
    return isinstance(node, ast.Starred)  # *MESSAGES[kind]: a table of N_ literals


def test_every_text_built_in_python_is_a_literal_msgid_the_catalog_can_hold():
    """An f-string noted, raised or given to Health would reach the pages untranslatable: its words
    are not a msgid. Every such text is a literal with named parameters."""
    bad, seen = [], 0
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for call in calls(tree, {"note"}):
            if call.args:
                seen += 1
                if not is_literal(call.args[0]):
                    bad.append(f"{path.name}:{call.lineno} note({ast.unparse(call.args[0])[:60]})")
        for call in calls(tree, {"raise_alert", "raise_alert_alone"}):
            for arg in call.args[1:3]:
                seen += 1
                if not is_literal(arg) and not (isinstance(arg, ast.Name) and path.name == "alerts.py"):
                    bad.append(f"{path.name}:{call.lineno} raise_alert(..., {ast.unparse(arg)[:60]})")
        for call in calls(tree, {"Health"}):
            for index, arg in enumerate(call.args[1:5], 1):
                seen += 1
                if not is_literal(arg) and not (index == 2 and isinstance(arg, ast.Name)):  # state: ok|warn|bad
                    bad.append(f"{path.name}:{call.lineno} Health(..., {ast.unparse(arg)[:60]})")
    assert seen > 80 and not bad, bad
