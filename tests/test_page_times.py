"""Times on the pages: one zone on every page (DISPLAY_TIMEZONE), named in the header; no time
shown in another zone (the go-live page's configuration rows and the alerts were in UTC); and a
license code that never expires says so instead of showing the marketplace's far-off date."""

import re
from datetime import datetime

import pytest
from isvapp.background import alerts, status
from isvapp.extensions import db
from isvapp.storage.models import LicenseCode, UsageRecord, UsageState
from isvapp.texts import N_

PAGES = [
    "/admin/",
    "/admin/go-live",
    "/admin/instances",
    "/admin/licenses",
    "/admin/license-codes",
    "/admin/tenants",
    "/admin/callbacks",
    "/admin/api-tokens",
]
UTC_TIME = re.compile(r"\d{1,2}:\d{2}(?::\d{2})?\s*(?:UTC|\(UTC\)|Z)\b")
MOMENT = datetime(2026, 3, 1, 1, 30)  # 09:30 in Asia/Shanghai


def header(html):
    return re.search(r"<header>(.*?)</header>", html, re.S).group(1)


@pytest.mark.parametrize("lang, words", [("en", "Times in UTC+8"), ("zh", "时间均为 UTC+8")])
def test_every_page_names_its_zone_in_the_header(browser, lang, words):  # noqa: F811
    for url in PAGES:
        page = browser.get(f"{url}?lang={lang}").get_data(as_text=True)
        assert words in header(page), url
    login = browser.application.test_client().get(f"/admin/login?lang={lang}").get_data(as_text=True)
    assert words in header(login)


@pytest.mark.parametrize("app_config", [{"DISPLAY_TIMEZONE": "UTC"}])
def test_the_zone_label_follows_display_timezone(browser):  # noqa: F811
    assert "Times in UTC<" in browser.get("/admin/?lang=en").get_data(as_text=True).replace("</span>", "<")


def test_the_go_live_rows_and_the_alerts_show_times_in_the_pages_zone(app, browser):  # noqa: F811
    with app.app_context():
        status.report("order_query", {"ok": True}, now=MOMENT)
        db.session.add(
            UsageRecord(
                metering_sn="sn-times",
                instance_id="i-times",
                usage_value="1",
                begin_time=MOMENT,
                end_time=MOMENT,
                record_time=MOMENT,
                state=UsageState.PUSHED,
                pushed_at=MOMENT,
                due_at=MOMENT.replace(hour=2),
            )
        )
        db.session.commit()
        with db.session.begin():
            alerts.raise_alert(
                "test_times",
                N_("Order query failing"),
                N_("The order query failed at %(failed_at)s."),
                params={"failed_at": MOMENT},
                now=MOMENT,
            )
    for lang in ("en", "zh"):
        page = browser.get(f"/admin/go-live?lang={lang}").get_data(as_text=True)
        order_query = re.search(r'data-health="order_query">(.*?)</tr>', page, re.S).group(1)
        usage_push = re.search(r'data-health="usage_push">(.*?)</tr>', page, re.S).group(1)
        alerts_page = browser.get(f"/admin/alerts?lang={lang}").get_data(as_text=True)
        alert_row = re.search(r'data-alert="test_times">(.*?)</tr>', alerts_page, re.S).group(1)
        for row in (order_query, usage_push, alert_row):
            assert "2026-03-01 09:30" in row and not UTC_TIME.search(row), (lang, row)
        assert not UTC_TIME.search(page + alerts_page), UTC_TIME.findall(page + alerts_page)


def test_a_license_code_that_never_expires_says_never(app, browser):  # noqa: F811
    with app.app_context():
        db.session.add(LicenseCode(code="PLNEVER1", state="NORMAL", expire_time=datetime(2099, 12, 31, 15, 59, 59)))
        db.session.add(LicenseCode(code="PLNEVER2", state="NORMAL", expire_time=datetime(2099, 12, 31, 23, 59, 59)))
        db.session.add(LicenseCode(code="PLSOON", state="NORMAL", expire_time=datetime(2030, 6, 30, 16, 0)))
        db.session.commit()
    english = browser.get("/admin/license-codes?lang=en").get_data(as_text=True)
    assert "2100-01-01" not in english and "2099-12-31" not in english
    assert english.count("never expires") == 2 and "2030-07-01 00:00:00" in english
    chinese = browser.get("/admin/license-codes?lang=zh").get_data(as_text=True)
    assert chinese.count("永不过期") == 2
