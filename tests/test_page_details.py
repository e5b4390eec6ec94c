"""Small things a merchant meets on the pages: the language switch keeps the filters, the order
chart counts whole orders and says when there are none, the login page says how the first admin
is made, the tenant page reads cleanly, and saving a hand-off URL says it was saved."""

import re
from datetime import timedelta
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from isvapp.dashboard import charts
from isvapp.extensions import db
from isvapp.storage.models import Instance, KitApp, KitUser, Tenant, utcnow

from .helpers import token

SWITCH = re.compile(r'<a href="([^"]*)" lang="(en|zh-CN)"[^>]*>')


def switch_links(html):
    return {lang: unescape(href) for href, lang in SWITCH.findall(html)}


def test_the_language_switch_keeps_the_pages_filters(browser):  # noqa: F811
    page = browser.get("/admin/instances?state=ACTIVE&data=all&q=ORDER%201&lang=en").get_data(as_text=True)
    links = switch_links(page)
    assert set(links) == {"en", "zh-CN"}, links
    chinese = urlsplit(links["zh-CN"])
    assert chinese.path in ("", "/admin/instances")
    assert parse_qs(chinese.query) == {"state": ["ACTIVE"], "data": ["all"], "q": ["ORDER 1"], "lang": ["zh"]}
    followed = browser.get("/admin/instances?" + chinese.query).get_data(as_text=True)
    assert 'value="ORDER 1"' in followed and "<h1>实例</h1>" in followed
    assert parse_qs(urlsplit(switch_links(followed)["en"]).query)["lang"] == ["en"]


def _y_labels(svg):
    """The y axis's tick labels (pygal draws the y axis, then the x axis, then the series)."""
    assert 'class="axis y' in svg, svg[:500]
    axis = re.split(r'<g class="(?:axis x|series)', svg.split('class="axis y', 1)[1])[0]
    return re.findall(r"<text[^>]*>([^<]*)</text>", axis)


def _add_orders(app, days_ago_counts):
    with app.app_context():
        now = utcnow()
        for days, count in days_ago_counts:
            for n in range(count):
                db.session.add(
                    Instance(
                        instance_id=f"chart-{days}-{n}",
                        order_id=f"CHART{days}{n}",
                        generation="G2",
                        state="ACTIVE",
                        test_flag=False,
                        created_at=now - timedelta(days=days),
                    )
                )
        db.session.commit()


@pytest.mark.parametrize("orders", [[(0, 1)], [(0, 3), (2, 7)], [(1, 23)]])
def test_the_order_chart_has_whole_order_ticks(app, orders):
    _add_orders(app, orders)
    with app.app_context():
        svg = charts.new_orders_per_day("Asia/Shanghai", lambda text: text)
    labels = _y_labels(svg)
    assert labels and all(re.fullmatch(r"\d+", label) for label in labels), labels
    assert int(labels[-1]) >= max(n for _, n in orders), labels


def test_an_empty_order_chart_says_there_are_no_orders(app, browser):  # noqa: F811
    with app.app_context():
        svg = charts.new_orders_per_day("Asia/Shanghai", lambda text: text)
    assert "No orders in this period" in svg
    chinese = browser.get("/admin/charts/orders.svg?lang=zh").get_data(as_text=True)
    assert "此期间没有订单" in chinese


def test_the_admin_login_page_says_how_the_first_admin_is_made(client):
    english = client.get("/admin/login?lang=en").get_data(as_text=True)
    assert "<code>.venv/bin/isvapp create-admin NAME</code>" in english
    chinese = client.get("/admin/login?lang=zh").get_data(as_text=True)
    assert "<code>.venv/bin/isvapp create-admin NAME</code>" in chinese and "管理员" in chinese


@pytest.fixture
def tenant(app):
    """A tenant with one app that has no name and one that has, and a user of each."""
    with app.app_context():
        row = Tenant(instance_key="inst-t", tenant_id="t-1", tenant_code="acme", name="Acme")
        db.session.add(row)
        db.session.add(KitApp(instance_key="inst-t", tenant_id="t-1", app_id="acme-app", name=None, client_id=None))
        db.session.add(KitApp(instance_key="inst-t", tenant_id="t-1", app_id="acme-crm", name="CRM", client_id="cid-9"))
        db.session.add(KitUser(instance_key="inst-t", tenant_id="t-1", app_id="acme-app", user_name="ann"))
        db.session.add(KitUser(instance_key="inst-t", tenant_id="t-1", app_id="acme-crm", user_name="bob"))
        db.session.commit()
        return row.id


def test_the_tenant_page_joins_only_what_an_app_has_and_names_each_users_app(browser, tenant):  # noqa: F811
    page = browser.get(f"/admin/tenants/{tenant}?lang=en").get_data(as_text=True)
    text = re.sub(r"<[^>]+>", " ", page)
    assert not re.search(r"·\s*·", text) and not re.search(r"clientId\s*(·|<|$)", text, re.M), text
    assert "cid-9" in page
    rows = re.findall(r"<tr>(.*?)</tr>", page.split("<h2>Users", 1)[1], re.S)
    header, *users = rows
    assert "<th>App</th>" in header
    cells = {re.findall(r"<td[^>]*>([^<]*)", row)[0]: row for row in users}
    assert "acme-app" in cells["ann"] and "acme-crm" in cells["bob"]


def test_saving_a_hand_off_url_says_so(app, browser, tenant):  # noqa: F811
    page = browser.get(f"/admin/tenants/{tenant}").get_data(as_text=True)
    with app.app_context():
        app_pk = db.session.query(KitApp.id).filter_by(app_id="acme-crm").scalar()
    saved = browser.post(
        f"/admin/tenants/{tenant}/apps/{app_pk}/handoff",
        data={"csrf_token": token(page), "handoff_url": "https://crm.example.com/sso"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert re.search(r'role="status"[^>]*>[^<]*saved', saved, re.I), saved[:2000]
    assert "https://crm.example.com/sso" in saved
    again = browser.get(f"/admin/tenants/{tenant}").get_data(as_text=True)
    assert 'role="status"' not in again  # said once
    refused = browser.post(
        f"/admin/tenants/{tenant}/apps/{app_pk}/handoff",
        data={"csrf_token": token(page), "handoff_url": "http://crm.example.com/sso"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert 'role="alert"' in refused and 'role="status"' not in refused
