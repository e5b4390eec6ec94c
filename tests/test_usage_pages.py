"""Pay-per-use usage on the merchant's pages (issue 32, point 7): an instance's page lists its usage
records (the hour, the value, when it was pushed, on time or late), and the overview counts the last
day's pushes and late hours."""

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

from isvapp.background import usage
from isvapp.dashboard import security
from isvapp.extensions import db
from isvapp.koo.signing import g2_signed_request
from isvapp.storage.models import Instance, UsageRecord, UsageState, utcnow
from sqlalchemy import update

from .helpers import KEY

PASSWORD = "usage pages password"


def logged_in(client):
    with client.application.app_context():
        security.set_password("boss", PASSWORD)
    page = client.get("/admin/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert (
        client.post("/admin/login", data={"name": "boss", "password": PASSWORD, "csrf_token": csrf}).status_code == 302
    )
    return client


def pay_per_use_instance(market, order):
    body = {
        "activity": "newInstance",
        "orderId": order,
        "orderLineId": f"{order}-000001",
        "businessId": f"biz-{order}",
        "testFlag": "0",
    }
    raw, query = g2_signed_request(KEY, body)
    market.send("POST", "/produce", query_string=query, data=raw, content_type="application/json")
    iid = f"biz-{order}"
    with market.app.app_context():
        # pay-per-use (the order details say so), and made before the usage the tests record
        made = utcnow() - timedelta(days=3)
        db.session.execute(
            update(Instance).where(Instance.instance_id == iid).values(charging_mode="ON_DEMAND", created_at=made)
        )
        db.session.commit()
    return iid


def pushed(app, sn, at, state=UsageState.PUSHED):
    with app.app_context():
        db.session.execute(update(UsageRecord).where(UsageRecord.metering_sn == sn).values(state=state, pushed_at=at))
        db.session.commit()


def local(moment):
    return moment.replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")


def usage_rows(html):
    """{metering_sn: the row's cells as text}."""
    return {
        sn: [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for sn, row in re.findall(r'<tr data-usage="([^"]+)"[^>]*>(.*?)</tr>', html, re.S)
    }


def test_an_instance_page_lists_its_usage_records_hour_value_push_and_timeliness(app, market, client):
    iid = pay_per_use_instance(market, "PPU-PAGE")
    other = pay_per_use_instance(market, "PPU-OTHER")
    hour = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=4)
    with app.app_context():
        on_time = usage.add(iid, "1.5", hour, hour + timedelta(hours=1), "sn-on-time")
        late = usage.add(iid, "2.25", hour + timedelta(hours=1), hour + timedelta(hours=2), "sn-late")
        waiting = usage.add(iid, "4", hour + timedelta(hours=4), hour + timedelta(hours=4, minutes=30), "sn-waiting")
        usage.add(other, "9", hour, hour + timedelta(hours=1), "sn-other")
    pushed(app, on_time, hour + timedelta(hours=1, minutes=5))
    pushed(app, late, hour + timedelta(hours=2, minutes=40))
    with app.app_context():
        usage.check_late()
    browser = logged_in(client)
    html = browser.get(f"/admin/instances/{iid}").get_data(as_text=True)
    rows = usage_rows(html)
    assert set(rows) == {on_time, late, waiting}  # its own, not another instance's
    hour_text = f"{local(hour)} – {local(hour + timedelta(hours=1))[-5:]}"
    assert rows[on_time][:2] == [hour_text, "1.5"]
    assert local(hour + timedelta(hours=1, minutes=5)) in rows[on_time][3] and rows[on_time][-1] == "on time"
    assert local(hour + timedelta(hours=2, minutes=40)) in rows[late][3] and rows[late][-1] == "late"
    assert rows[waiting][2] == "not pushed yet" and rows[waiting][3] == "" and rows[waiting][-1] == "not due yet"
    zh = usage_rows(browser.get(f"/admin/instances/{iid}?lang=zh").get_data(as_text=True))
    assert zh[on_time][-1] == "按时" and zh[late][-1] == "迟到" and zh[waiting][-1] == "未到期"


def test_a_record_past_its_deadline_and_not_pushed_is_late_on_the_page(app, market, client):
    iid = pay_per_use_instance(market, "PPU-MISSED")
    hour = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    with app.app_context():
        sn = usage.add(iid, "3", hour, hour + timedelta(hours=1))
    rows = usage_rows(logged_in(client).get(f"/admin/instances/{iid}").get_data(as_text=True))
    assert rows[sn][2] == "not pushed yet" and rows[sn][-1] == "late"


def test_the_overview_counts_the_last_days_pushes_and_late_hours(app, market, client):
    iid = pay_per_use_instance(market, "PPU-OVERVIEW")
    now = utcnow().replace(microsecond=0)
    hour = now.replace(minute=0, second=0) - timedelta(hours=5)
    old = now.replace(minute=0, second=0) - timedelta(days=3)
    with app.app_context():
        sns = [usage.add(iid, "1", hour + timedelta(hours=n), hour + timedelta(hours=n + 1)) for n in range(3)]
        stale = usage.add(iid, "1", old, old + timedelta(hours=1))
    pushed(app, sns[0], hour + timedelta(hours=1, minutes=1))
    pushed(app, sns[1], hour + timedelta(hours=2, minutes=50))  # late
    pushed(app, stale, old + timedelta(hours=1, minutes=1))  # three days ago: not the last day's
    with app.app_context():
        usage.check_late()  # sns[1] pushed late, sns[2] never pushed: two late hours
    browser = logged_in(client)
    html = browser.get("/admin/").get_data(as_text=True)
    figures = dict(re.findall(r'data-figure="(\w+)">(\d+)<', html))
    assert figures["usage_pushed_24h"] == "2" and figures["usage_late_24h"] == "2", figures
    assert 'class="card bad" id="usage-24h"' in html
    assert "使用量" in browser.get("/admin/?lang=zh").get_data(as_text=True)
