"""The merchant's pages through the test client: access, sessions, CSRF, headers, filters, CSV, i18n."""

import csv
import io
import re

import pytest
from isvapp.storage.models import Callback, LoginAttempt

from .helpers import PASSWORD, TENANT, g1_order, kit_ok, log_in, log_in_from, new_order, token


def test_every_page_requires_login(app, client, admin):
    open_endpoints = {"dashboard.login", "dashboard.static", "static", "health.healthz", "health.readyz"}
    checked = 0
    for rule in app.url_map.iter_rules():
        # the marketplace's routes verify their own signatures; the buyer's login is for strangers;
        # the entitlement API takes its own bearer tokens (tests/test_entitlements.py); the License
        # relay, its installation tokens (tests/test_license_codes.py); /metrics, this host or its
        # own token (tests/test_metrics.py)
        prefixes = ("produce.", "login.", "productapi.", "relay.", "monitoring.")
        if rule.endpoint in open_endpoints or rule.endpoint.startswith(prefixes):
            continue
        url = (
            rule.rule.replace("<instance_id>", "x")
            .replace("<license_id>", "x")
            .replace("<int:tenant_pk>", "1")
            .replace("<int:callback_id>", "1")
            .replace("<int:app_pk>", "1")
            .replace("<int:job_id>", "1")
        )
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            response = client.open(url, method=method)
            assert response.status_code == 302, (method, url)
            assert "/admin/login" in response.headers["Location"] or url == "/"
            checked += 1
    assert checked >= 15


def test_login_logout_and_a_reset_password_ends_sessions(app, client, admin, runner):
    assert client.get("/admin/").status_code == 302
    before = client.get_cookie("session")
    response = log_in(client)
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/")
    page = client.get("/admin/")
    assert page.status_code == 200 and "boss" in page.get_data(as_text=True)
    assert client.get_cookie("session").value != (before.value if before else None)
    result = runner.invoke(args=["create-admin", "boss", "--password", "another long password"])
    assert "reset" in result.output
    assert client.get("/admin/").status_code == 302  # the old session no longer counts
    log_in(client, password="another long password")
    logout_page = client.get("/admin/").get_data(as_text=True)
    assert client.post("/admin/logout", data={"csrf_token": token(logout_page)}).status_code == 302
    assert client.get("/admin/").status_code == 302


def test_session_fixation_a_token_from_before_login_is_useless_after(client, admin):
    pre = token(client.get("/admin/login").get_data(as_text=True))
    log_in(client)
    assert client.post("/admin/logout", data={"csrf_token": pre}).status_code == 400


def test_login_is_rate_limited_with_one_generic_message(client, admin):
    messages = set()
    for _ in range(5):
        response = log_in(client, password="wrong password")
        assert response.status_code == 401
        messages.add(re.search(r'role="alert">([^<]+)<', response.get_data(as_text=True)).group(1))
    unknown = log_in(client, name="nobody", password="x")
    messages.add(re.search(r'role="alert">([^<]+)<', unknown.get_data(as_text=True)).group(1))
    assert len(messages) == 1
    assert log_in(client).status_code == 401  # right password, but too many failures just now


def test_forms_without_the_csrf_token_are_refused(browser, market):
    market.g2(new_order(business="inst-csrf"))
    assert browser.post("/admin/instances/inst-csrf").status_code == 400
    assert browser.post("/admin/logout", data={"csrf_token": "forged"}).status_code == 400


def test_cookies_and_security_headers(client, admin):
    response = log_in(client)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    page = client.get("/admin/")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script" not in page.get_data(as_text=True) and "style=" not in page.get_data(as_text=True)
    secure = log_in(client.application.test_client(), name="boss")
    over_https = client.application.test_client()
    login_page = over_https.get("/admin/login", base_url="https://localhost").get_data(as_text=True)
    response = over_https.post(
        "/admin/login",
        base_url="https://localhost",
        data={"name": "boss", "password": PASSWORD, "csrf_token": token(login_page)},
    )
    assert "Secure" in response.headers["Set-Cookie"]
    del secure


def test_pages_show_what_arrived_and_escape_it(browser, market):
    market.g1(g1_order(business="xss", customerName="<script>alert(1)</script>"))
    market.g2(new_order(business="g2-real", test_flag="0"))
    kit_ok(market.kit("tenantSync", TENANT))
    listing = browser.get("/admin/instances?data=all").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing and "<script>alert" not in listing
    assert "g2-real" in listing
    real_only = browser.get("/admin/instances").get_data(as_text=True)
    assert "g2-real" in real_only and "xss" not in real_only  # test data hidden by default
    detail = browser.get("/admin/instances/xss").get_data(as_text=True)
    assert "Show credentials" in detail and 'id="password"' not in detail
    revealed = browser.post("/admin/instances/xss", data={"csrf_token": token(detail)}).get_data(as_text=True)
    assert 'id="password"' in revealed
    for url in ("/admin/", "/admin/licenses", "/admin/tenants", "/admin/callbacks", "/admin/callbacks?code=fail"):
        assert browser.get(url).status_code == 200, url
    tenants_page = browser.get("/admin/tenants").get_data(as_text=True)
    links = re.findall(r'href="(/admin/tenants/\d+)"', tenants_page)
    assert len(links) == 1, tenants_page[-800:]
    tenant_link = links[0]
    assert "huaiweitest" in browser.get(tenant_link).get_data(as_text=True)
    [callback] = market.rows(Callback, Callback.instance_id == "g2-real")
    assert "g2-real" in browser.get(f"/admin/callbacks/{callback.id}").get_data(as_text=True)


def test_filters_search_and_pages(browser, market):
    for n in range(60):
        market.g2(new_order(order=f"PAGE{n:03d}", business=f"page-{n:03d}", test_flag="0"))
    first = browser.get("/admin/instances").get_data(as_text=True)
    assert first.count('href="/admin/instances/page-') == 50 and "page-059" in first and 'rel="next"' in first
    second = browser.get("/admin/instances?page=2").get_data(as_text=True)
    assert second.count('href="/admin/instances/page-') == 10 and 'rel="next"' not in second
    found = browser.get("/admin/instances?q=PAGE007").get_data(as_text=True)
    assert found.count('href="/admin/instances/page-') == 1 and "page-007" in found
    assert "page-0" not in browser.get("/admin/instances?state=RELEASED").get_data(as_text=True)


def test_csv_export_streams_the_filtered_rows(browser, market):
    for n in range(5):
        market.g2(new_order(order=f"CSV{n}", business=f"csv-{n}", test_flag="0"))
    market.g2(new_order(order="CSVTEST", business="csv-test", test_flag="1"))
    response = browser.get("/admin/instances.csv")
    assert response.is_streamed and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert sorted(r["instance_id"] for r in rows) == [f"csv-{n}" for n in range(5)]
    one = list(csv.DictReader(io.StringIO(browser.get("/admin/instances.csv?q=CSV3").get_data(as_text=True))))
    assert [r["instance_id"] for r in one] == ["csv-3"]
    log = list(csv.DictReader(io.StringIO(browser.get("/admin/callbacks.csv").get_data(as_text=True))))
    assert len(log) == 6 and {r["result_code"] for r in log} == {"000000"}
    assert browser.get("/admin/licenses.csv").status_code == 200


def test_language_follows_the_browser_and_the_switch(client, admin):
    assert "登录" in client.get("/admin/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).get_data(as_text=True)
    assert "Log in" in client.get("/admin/login", headers={"Accept-Language": "en-US"}).get_data(as_text=True)
    client.get("/admin/login?lang=zh")
    assert "登录" in client.get("/admin/login", headers={"Accept-Language": "en-US"}).get_data(as_text=True)


def test_create_admin_refuses_a_short_password(runner):
    result = runner.invoke(args=["create-admin", "boss", "--password", "short"])
    assert result.exit_code != 0 and "10 characters" in result.output


def test_warnings_are_counted_on_the_overview_and_listed_on_the_callback(browser, market):
    """A signed request accepted despite its shape shows the merchant what was odd about it."""
    market.g2({**new_order(business="warned"), "testFlag": "maybe"})
    market.g2(new_order(order="CLEAN"))
    overview = browser.get("/admin/").get_data(as_text=True)
    assert re.search(r"Accepted with warnings in the last 24 h</h2>\s*<p class=\"big\"><a [^>]*>1</a>", overview)
    listing = browser.get("/admin/callbacks?warned=1").get_data(as_text=True)
    assert listing.count('class="badge warn"') == 1 and "CLEAN" not in listing
    [row] = market.rows(Callback, Callback.warnings.is_not(None))
    detail = browser.get(f"/admin/callbacks/{row.id}").get_data(as_text=True)
    shown = re.sub(r"</?span[^>]*>", "", detail)  # the values are marked as data: <span translate="no">
    assert "testFlag: maybe is not 0 or 1; read as 0" in shown and "sha256:" in detail
    chinese = browser.get(f"/admin/callbacks/{row.id}?lang=zh").get_data(as_text=True)
    assert "警告" in chinese


def test_the_callback_log_filters_by_result_code(app, browser):
    """One code, every failure, or success: the failures' index holds only rows that were not success,
    and a filter on one failing code is still answered from it (SQLite names it in the plan)."""
    from isvapp.dashboard import views
    from isvapp.extensions import db
    from sqlalchemy import text

    with app.app_context():
        for n, code in enumerate(("000000", "000001", "000003", "000000")):
            db.session.add(Callback(method="POST", path="/produce", order_id=f"ORD-{code}-{n}", result_code=code))
        db.session.commit()

    def listed(query):
        page = browser.get("/admin/callbacks?" + query).get_data(as_text=True)
        return sorted(set(re.findall(r"ORD-\d{6}-\d", page)))

    assert listed("code=000003") == ["ORD-000003-2"]
    assert listed("code=fail") == ["ORD-000001-1", "ORD-000003-2"]
    assert listed("code=000000") == ["ORD-000000-0", "ORD-000000-3"]
    with app.test_request_context("/admin/callbacks?code=000003"), app.app_context():
        if db.engine.dialect.name == "sqlite":
            statement = views.callback_query().limit(50)
            sql = str(statement.compile(db.engine, compile_kwargs={"literal_binds": True}))
            plan = " ".join(row[-1] for row in db.session.execute(text("EXPLAIN QUERY PLAN " + sql)))
            assert "ix_callbacks_failed_received" in plan, plan


def test_a_strangers_failures_do_not_lock_the_admin_out_elsewhere(app, admin):
    stranger, owner = app.test_client(), app.test_client()
    for _ in range(12):
        assert log_in_from(stranger, "203.0.113.9", password="guess").status_code == 401
    assert log_in_from(stranger, "203.0.113.9").status_code == 401  # that address is locked for that name
    assert log_in_from(owner, "198.51.100.7").status_code == 302  # the admin, elsewhere, is not
    # Refused attempts during the lock are not counted: the lock does not grow with them.
    with app.app_context():
        from isvapp.extensions import db
        from sqlalchemy import func, select

        counted = db.session.execute(
            select(func.count()).select_from(LoginAttempt).where(LoginAttempt.remote_addr == "203.0.113.9")
        ).scalar_one()
    assert counted == 5


def test_one_address_cannot_try_many_names(app, admin):
    client = app.test_client()
    for n in range(20):
        log_in_from(client, "203.0.113.10", name=f"user{n}", password="guess")
    assert log_in_from(client, "203.0.113.10").status_code == 401


def test_a_cookie_copied_before_logout_is_worthless_after(app, admin):
    client = app.test_client()
    assert log_in(client).status_code == 302
    copied = client.get_cookie("session").value
    logout_page = client.get("/admin/").get_data(as_text=True)
    client.post("/admin/logout", data={"csrf_token": token(logout_page)})
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert thief.get("/admin/").status_code == 302


@pytest.mark.parametrize(
    "url, words",
    [
        ("/admin/instances?page=99999999999999999999", "page must be a whole number"),
        ("/admin/instances?page=0", "page must be a whole number"),
        ("/admin/instances?expiring=" + "9" * 30, "expiring must be a whole number"),
        ("/admin/instances?expiring=-1", "expiring must be a whole number"),
        ("/admin/callbacks?page=abc", "page must be a whole number"),
    ],
)
def test_bad_page_input_is_a_clear_400(browser, url, words):
    response = browser.get(url)
    assert response.status_code == 400 and words in response.get_data(as_text=True)


def test_a_non_ascii_csrf_token_is_a_400(browser):
    assert browser.post("/admin/logout", data={"csrf_token": "令牌"}).status_code == 400


def test_csv_cells_that_look_like_formulas_are_neutralised(browser, market):
    order = {**g1_order(), "customerName": '=HYPERLINK("http://evil.example","click")', "businessId": "csv-1"}
    market.g1(order)
    rows = list(csv.DictReader(io.StringIO(browser.get("/admin/instances.csv?data=all").get_data(as_text=True))))
    assert rows[0]["customer_name"] == "'" + order["customerName"]
    for start in "+-@\t\r":
        from isvapp.dashboard.views import csv_cell

        assert csv_cell(start + "1+1") == "'" + start + "1+1"
    assert csv_cell(-5) == -5 and csv_cell("plain") == "plain"


def test_detail_pages_show_labelled_fields_coloured_states_and_local_times(browser, market):
    market.g1({**g1_order(), "businessId": "labelled", "expireTime": "20301231160000"})
    page = browser.get("/admin/instances/labelled").get_data(as_text=True)
    assert "<dt>Order line</dt>" in page and "order_line_id" not in page and "expire_time" not in page
    assert 'class="badge state state-active">ACTIVE' in page
    assert "2031-01-01 00:00" in page  # 16:00 UTC shown in Asia/Shanghai
    chinese = browser.get("/admin/instances/labelled?lang=zh").get_data(as_text=True)
    assert "<dt>订单行</dt>" in chinese and ">正常</span>" in chinese
