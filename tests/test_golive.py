"""The go-live page: checklists that turn green as debugging calls succeed, failures explained, health."""

import re

import pytest
from isvapp.background import status
from isvapp.dashboard import diagnosis
from isvapp.koo import codes
from isvapp.storage.models import Callback

from .helpers import KEY, debug_round, new_order, row_state


def test_the_checklist_turns_green_as_a_debugging_round_passes(browser, market):
    page = browser.get("/admin/go-live").get_data(as_text=True)
    assert row_state(page, "period-new") == "not debugged yet"
    debug_round(market)
    page = browser.get("/admin/go-live").get_data(as_text=True)
    for scenario in ("new", "query", "renew", "expire", "release"):
        assert row_state(page, f"period-{scenario}") == "passed", scenario
    assert re.search(r'id="checklist-period">\s*<h2>SaaS yearly/monthly <span class="badge ok">ready', page)
    assert "http://localhost/produce" in page and "http://localhost/license" in page


def test_a_failed_debugging_call_says_why_and_links_the_callback(browser, market):
    debug_round(market)
    bad = {**new_order(test_flag="1"), "orderLineId": None}
    market.g2({k: v for k, v in bad.items() if v is not None})
    page = browser.get("/admin/go-live").get_data(as_text=True)
    assert row_state(page, "period-new") == "failed"
    [row] = market.rows(Callback, Callback.result_code == codes.INVALID_PARAM)
    assert f'/admin/callbacks/{row.id}"' in page and "A field the activity needs was missing" in page
    chinese = browser.get("/admin/go-live?lang=zh").get_data(as_text=True)
    assert "接口所需的字段缺失" in chinese and "上线检查" in chinese


def test_real_orders_do_not_count_as_debugging(browser, market):
    market.g2(new_order())  # testFlag 0
    assert row_state(browser.get("/admin/go-live").get_data(as_text=True), "period-new") == "not debugged yet"


def test_kinds_of_product_appear_when_the_marketplace_debugs_them(browser, market):
    from .helpers import TENANT

    market.kit("tenantSync", {**TENANT, "testFlag": 1})
    page = browser.get("/admin/go-live").get_data(as_text=True)
    assert row_state(page, "kit-tenant") == "passed" and row_state(page, "kit-auth") == "not debugged yet"


def test_health_shows_keys_by_fingerprint_clock_worker_and_disk(app, browser, market):
    market.g2(new_order(), timestamp=int(__import__("time").time() * 1000) - 20_000)  # 20 s behind
    with app.app_context():
        status.report("order_query", {"ok": False, "error": "MKT.0154: Illegal token"})
    page = browser.get("/admin/go-live").get_data(as_text=True)
    assert KEY not in page and "sha256:" in page
    health = dict(re.findall(r'data-health="(\w+)">.*?class="badge (\w+)"', page, re.S))
    assert health["keys"] == "ok" and health["secret"] == "bad"  # the test config's SECRET_KEY is short
    assert health["clock"] == "warn" and health["worker"] == "bad" and health["order_query"] == "bad"
    assert health["disk"] == "ok" and "MKT.0154" in page


@pytest.mark.parametrize(
    "code, message, cause",
    [
        ("000001", "signature does not match", "wrong_key"),
        ("000001", "authToken does not match", "wrong_key"),
        ("000001", "signature is missing", "unsigned"),
        ("000001", "nonce has been used before (replayed request)", "replayed"),
        ("000002", "timestamp outside the 60 s window (clock off by 75 s)", "clock"),
        ("000002", "request body is larger than 1048576 bytes", "too_large"),
        ("000002", "orderId: Missing data for required field.", "bad_field"),
        ("000003", "instance x does not exist", "no_instance"),
        ("000005", "database busy or unavailable, please retry", "database"),
        ("000005", "internal error", "internal"),
        ("000101", "clientSecret cannot be decrypted with the configured RSA key", "kit_secret"),
    ],
)
def test_each_failure_has_one_fixed_explanation(code, message, cause):
    assert diagnosis.explain(code, message)[0] == cause
    assert diagnosis.explain("000000", "success.") is None


def test_a_failed_callbacks_page_explains_it(browser, market):
    market.g2(new_order(), key="not-the-key")
    [row] = market.rows(Callback)
    page = browser.get(f"/admin/callbacks/{row.id}").get_data(as_text=True)
    assert 'data-cause="wrong_key"' in page and "does not match the Seller Console" in page


@pytest.mark.parametrize("name", ["callbacks", "orders", "expiring"])
def test_overview_charts_are_server_rendered_svg_without_script_reach(browser, market, name):
    debug_round(market)
    market.g2(new_order(order="REALCHART"))
    market.g2(new_order(), key="wrong")
    response = browser.get(f"/admin/charts/{name}.svg")
    svg = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "image/svg+xml" and svg.startswith("<svg")
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "http://" not in svg.replace("http://www.w3.org", "").replace("http://pygal.org", "").replace(
        "http://github.com/Kozea/pygal", ""
    )  # nothing fetched from elsewhere
    overview = browser.get("/admin/").get_data(as_text=True)
    assert f"/admin/charts/{name}.svg" in overview and "<script" not in overview


def test_the_callbacks_chart_counts_by_result(browser, market):
    market.g2(new_order(order="C1"))
    market.g2(new_order(order="C2"), key="wrong")
    svg = browser.get("/admin/charts/callbacks.svg?lang=zh").get_data(as_text=True)
    assert "每日回调" in svg and "成功" in svg and "拒绝" in svg
    values = re.findall(r'<desc class="value">(\d+)</desc>', svg)
    assert sorted(int(v) for v in values if v != "0")[-2:] == [1, 1]


def test_the_page_after_a_pay_per_use_debugging_round_shows_the_usage_push(app, browser, market):
    """The page run.sh sends a merchant to first: `flask simulate`'s pay-per-use suite must not break it."""
    from datetime import datetime, timedelta

    from isvapp.background import usage
    from isvapp.extensions import db
    from isvapp.storage.models import Instance, UsageRecord, UsageState
    from sqlalchemy import update

    from .helpers import g1_order, signed_result

    iid = signed_result(market.g1(g1_order(order="PPU1", chargingMode="ON_DEMAND")))["instanceId"]
    assert (
        signed_result(
            market.g1({"activity": "instanceStatus", "instanceId": iid, "instanceStatus": "FREEZE", "testFlag": "1"})
        )["resultCode"]
        == codes.SUCCESS
    )
    response = browser.get("/admin/go-live")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert row_state(page, "payperuse-status") == "passed"
    assert row_state(page, "payperuse-usage") == "not debugged yet"
    with app.app_context():
        begin = datetime.utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
        db.session.execute(  # made before the usage it reports
            update(Instance).where(Instance.instance_id == iid).values(created_at=begin - timedelta(days=1))
        )
        db.session.commit()
        sn = usage.add(iid, "1.5", begin, begin + timedelta(hours=1))
        db.session.execute(
            update(UsageRecord)
            .where(UsageRecord.metering_sn == sn)
            .values(state=UsageState.PUSHED, pushed_at=begin + timedelta(hours=1, minutes=5))
        )
        db.session.commit()
    assert market.count(Instance) == 1
    page = browser.get("/admin/go-live").get_data(as_text=True)
    assert row_state(page, "payperuse-usage") == "passed"
    assert browser.get("/admin/go-live?lang=zh").status_code == 200


@pytest.mark.parametrize("app_config", [{"PROXY_FIX_HOPS": 1}])
def test_a_request_from_another_host_with_no_proxy_in_front_is_warned_about(app, client, admin):
    from .helpers import log_in_from

    assert log_in_from(client, "127.0.0.1").status_code == 302
    page = client.get("/admin/go-live", headers={"X-Forwarded-For": "203.0.113.8"}).get_data(as_text=True)
    assert re.search(r'data-health="proxy">.*?class="badge ok"', page, re.S)  # through a proxy on this host
    page = client.get("/admin/go-live", environ_base={"REMOTE_ADDR": "203.0.113.8"}).get_data(as_text=True)
    assert re.search(r'data-health="proxy">.*?class="badge warn"', page, re.S)
    assert "two slow clients can hold both workers" in page


def test_a_callback_from_another_host_is_warned_about_without_proxy_fix(browser, market):
    assert 'data-health="proxy">' in browser.get("/admin/go-live").get_data(as_text=True)
    market.send("POST", "/produce", data=b"{}", environ_base={"REMOTE_ADDR": "198.51.100.4"})
    page = browser.get("/admin/go-live").get_data(as_text=True)
    assert re.search(r'data-health="proxy">.*?class="badge warn"', page, re.S)


def login_row(app):
    from isvapp.dashboard import golive
    from isvapp.extensions import db

    with app.app_context():
        rows = [h for h in golive.health(app, app.extensions["isvapp"]) if h.key == "login"]
        db.session.rollback()
    return rows[0] if rows else None


def test_the_buyers_login_row_asks_for_a_pinned_issuer_and_no_loopback_idp(app):
    """Issue 33: with LOGIN_ISSUER or LOGIN_REDIRECT_URI unset they come from each request's Host
    header, and LOGIN_ALLOW_LOOPBACK_IDP is a development setting: the page says so once an app
    can use the login, and not before."""
    from dataclasses import replace

    from isvapp.extensions import db
    from isvapp.storage.models import KitApp

    assert login_row(app) is None  # no joint-operation app: nothing to say
    with app.app_context():
        db.session.add(KitApp(instance_key="I", tenant_id="T", app_id="A", client_id="c"))
        db.session.commit()
    row = login_row(app)
    assert row.state == "warn" and row.params == {"names": "LOGIN_ISSUER, LOGIN_REDIRECT_URI"}
    settings = app.extensions["isvapp"]
    pinned = replace(
        settings.login, issuer="https://isv.example.com", redirect_uri="https://isv.example.com/login/callback"
    )
    app.extensions["isvapp"] = replace(settings, login=pinned)
    assert login_row(app).state == "ok"
    app.extensions["isvapp"] = replace(settings, login=replace(pinned, allow_loopback_idp=True))
    assert login_row(app).state == "bad" and "LOGIN_ALLOW_LOOPBACK_IDP" in login_row(app).detail


def selfcheck_row(app):
    from isvapp.dashboard import golive
    from isvapp.extensions import db

    with app.app_context():
        [row] = [h for h in golive.health(app, app.extensions["isvapp"]) if h.key == "selfcheck"]
        db.session.rollback()
    return row


def test_the_go_live_page_shows_the_last_security_self_check(app):
    """Issue 34: `isvapp selfcheck URL` records itself; the page says what the scan would flag."""
    from isvapp import selfcheck

    assert selfcheck_row(app).state == "warn" and selfcheck_row(app).detail == "never run"
    findings = [
        selfcheck.Finding("tls.tls1_0", selfcheck.BAD, "TLS 1.0 is offered", "Turn it off"),
        selfcheck.Finding("http.hsts", selfcheck.WARN, "HSTS is short", "Make it a year"),
        selfcheck.Finding("server.banner", selfcheck.OK, "no version", ""),
    ]
    with app.app_context():
        status.record_selfcheck(selfcheck.summary("https://isv.example.com", findings))
    row = selfcheck_row(app)
    assert row.state == "bad" and row.params["bad"] == 1 and row.params["warn"] == 1
    assert row.params["ids"] == "tls.tls1_0, http.hsts" and row.params["url"] == "https://isv.example.com"
    with app.app_context():
        status.record_selfcheck(selfcheck.summary("https://isv.example.com", findings[2:]))
    assert selfcheck_row(app).state == "ok"


def health_row(app, key):
    from isvapp.dashboard import golive
    from isvapp.extensions import db

    with app.app_context():
        rows = [h for h in golive.health(app, app.extensions["isvapp"]) if h.key == key]
        db.session.rollback()
    return rows[0] if rows else None


def test_the_health_checks_take_their_thresholds_from_the_settings(app, market):
    """Issue 36 point 7: the disk row turns bad below ALERT_DISK_FREE_PCT (it was a hard-coded 10 %),
    the worker row past ALERT_WORKER_SILENT_S, the backup row past GO_LIVE_BACKUP_MAX_AGE_H, the
    clock row from GO_LIVE_CLOCK_SKEW_S: the thresholds the alerts and /readyz use, or declared ones."""
    import time
    from datetime import timedelta

    import isvapp.settings
    from isvapp.storage.models import utcnow

    now = utcnow()
    with app.app_context():
        status.report("worker_heartbeat", {"worker": "w1"}, now=now - timedelta(seconds=200))
        status.report("backup", {"path": "/b"}, now=now - timedelta(hours=30))
    market.g2(new_order(), timestamp=int(time.time() * 1000) - 3_000)  # 3 s behind
    states = {key: health_row(app, key).state for key in ("disk", "worker", "backup", "clock")}
    assert states == {"disk": "ok", "worker": "ok", "backup": "ok", "clock": "ok"}  # 200 s, 30 h, 3 s
    app.config.update(
        ALERT_DISK_FREE_PCT=100, ALERT_WORKER_SILENT_S=100, GO_LIVE_BACKUP_MAX_AGE_H=24, GO_LIVE_CLOCK_SKEW_S=1
    )
    isvapp.settings.init_app(app)  # read once per app: read them again
    states = {key: health_row(app, key).state for key in ("disk", "worker", "backup", "clock")}
    assert states == {"disk": "bad", "worker": "bad", "backup": "warn", "clock": "warn"}
    app.config.update(ALERT_DISK_FREE_PCT=0)  # 0: never (no disk has less than 0 % free)
    isvapp.settings.init_app(app)
    assert health_row(app, "disk").state == "ok"


def test_a_setting_name_nobody_declared_is_a_health_row_with_the_nearest_name(app, browser):  # noqa: F811
    import isvapp.settings

    assert health_row(app, "names") is None  # every name known: nothing to say
    isvapp.settings.report_unknown(app, {"ALERT_DINGTALK_UR"}, ["ISVAPP_KOO_API_TIMEOUT"])
    row = health_row(app, "names")
    assert row.state == "warn" and row.params == {
        "names": "ALERT_DINGTALK_UR, ISVAPP_KOO_API_TIMEOUT",
        "nearest": "ALERT_DINGTALK_URL, ISVAPP_KOO_API_TIMEOUT_S",
    }
    page = browser.get("/admin/go-live?lang=en").get_data(as_text=True)
    health = dict(re.findall(r'data-health="(\w+)">.*?class="badge (\w+)"', page, re.S))
    assert health["names"] == "warn" and "ISVAPP_KOO_API_TIMEOUT_S" in page
    chinese = browser.get("/admin/go-live?lang=zh").get_data(as_text=True)
    assert "配置项名称" in chinese and "最接近的已知名称" in chinese
