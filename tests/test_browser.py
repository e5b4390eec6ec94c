"""The pages in a real browser: Debian's Chromium driven by Playwright, against gunicorn on loopback.

Screenshots are kept in artifacts/ (see README) for CI to archive.
"""

import csv
import io
import json
import shutil

import pytest
import requests
from isvapp.koo.signing import g1_signed_params, g2_signed_request
from playwright.sync_api import sync_playwright

from .helpers import KEY
from .live import ROOT, LiveServer
from .tiers import live_fixture

# pages in Chromium: what the pages query runs on both databases in test_dashboard and test_golive
pytestmark = pytest.mark.any_database

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "artifacts"
PASSWORD = "browser test password"
EVIL = "<script>alert('owned')</script> Ltd"


def seed(url):
    session = requests.Session()
    params = {
        "activity": "newInstance",
        "businessId": "evil-1",
        "customerId": "c" * 32,
        "customerName": EVIL,
        "orderId": "EVIL-ORDER",
        "productId": "00301-666666-0--0",
        "expireTime": "20300101000000",
        "testFlag": "0",
    }
    assert (
        json.loads(session.get(url + "/produce", params=g1_signed_params(KEY, params)).content)["resultCode"]
        == "000000"
    )
    for n in range(3):
        body = {
            "activity": "newInstance",
            "orderId": f"BROWSER{n}",
            "orderLineId": f"BROWSER{n}-000001",
            "businessId": f"plain-{n}",
            "testFlag": "0",
        }
        raw, query = g2_signed_request(KEY, body)
        session.post(url + "/produce", params=query, data=raw, headers={"Content-Type": "application/json"})


@live_fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser")
    server = LiveServer(folder, workers=2, env={"ISVAPP_KOO_ACCESS_KEY": KEY})
    server.flask("init-db")
    server.flask("create-admin", "boss", "--password", PASSWORD)
    with server:
        seed(server.url)
        yield server


def test_log_in_filter_open_a_detail_download_csv_and_see_markup_as_text(site, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    dialogs = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(accept_downloads=True, locale="en-US")
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(site.url + "/admin/instances")
        assert "/admin/login" in page.url
        page.fill("input[name=name]", "boss")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]:has-text('Log in')")
        page.wait_for_url("**/admin/instances")

        page.fill("input[name=q]", "EVIL-ORDER")
        page.click("button:has-text('Filter')")
        page.wait_for_url("**q=EVIL-ORDER**")
        rows = page.locator("tbody tr")
        assert rows.count() == 1
        assert EVIL in rows.first.inner_text()  # the markup is shown as text...
        page.screenshot(path=str(ARTIFACTS / "dashboard-instances.png"), full_page=True)

        with page.expect_download() as download:
            page.click("text=Export CSV")
        exported = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
        assert [r["instance_id"] for r in exported] == ["evil-1"] and exported[0]["customer_name"] == EVIL

        page.click("a:has-text('evil-1')")
        page.wait_for_url("**/admin/instances/evil-1")
        assert page.locator("#password").count() == 0
        page.click("#reveal")
        assert len(page.locator("#password").inner_text()) >= 12
        assert EVIL in page.inner_text("main")
        page.screenshot(path=str(ARTIFACTS / "dashboard-instance.png"), full_page=True)

        page.goto(site.url + "/admin/?lang=zh")
        assert "概览" in page.inner_text("h1")
        browser.close()
    assert dialogs == []  # ...and never runs
    assert (ARTIFACTS / "dashboard-instances.png").stat().st_size > 1000


# --- every page, both languages; the go-live page turning green; an alert arriving ----------------


def log_in(page, url):
    page.goto(url + "/admin/login")
    page.fill("input[name=name]", "boss")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/**")


def launch(p):
    return p.chromium.launch(
        executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    )


@pytest.mark.parametrize("lang, word", [("en", "Overview"), ("zh", "概览")])
def test_every_page_in_both_languages_with_screenshots(site, lang, word):
    ARTIFACTS.mkdir(exist_ok=True)
    session = requests.Session()
    raw, query = g2_signed_request(
        KEY,
        {
            "activity": "newInstance",
            "orderId": "SHOT",
            "orderLineId": "SHOT-1",
            "businessId": "shot-1",
            "testFlag": "1",
        },
    )
    session.post(site.url + "/produce", params=query, data=raw, headers={"Content-Type": "text/plain"})
    pages = {
        "overview": "/admin/",
        "go-live": "/admin/go-live",
        "instances": "/admin/instances?data=all",
        "instance": "/admin/instances/shot-1",
        "licenses": "/admin/licenses",
        "tenants": "/admin/tenants",
        "callbacks": "/admin/callbacks",
        "callback": None,
    }
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(locale="zh-CN" if lang == "zh" else "en-US", viewport={"width": 1280, "height": 900})
        page.goto(site.url + f"/admin/login?lang={lang}")
        page.screenshot(path=str(ARTIFACTS / f"page-login-{lang}.png"), full_page=True)
        assert ("登录" if lang == "zh" else "Log in") in page.inner_text("main")
        log_in(page, site.url)
        page.goto(site.url + f"/admin/?lang={lang}")
        for name, path in pages.items():
            if path is None:
                page.goto(site.url + "/admin/callbacks")
                page.locator("tbody tr a").first.click()
                page.wait_for_url("**/admin/callbacks/*")
            else:
                page.goto(site.url + path)
            assert word in page.inner_text("header"), (name, lang)
            shot = ARTIFACTS / f"page-{name}-{lang}.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 5000
        if lang == "zh":
            page.goto(site.url + "/admin/go-live")
            assert "上线检查" in page.inner_text("h1")
            # Chinese glyphs really render (a missing CJK font draws every one as the same box).
            widths = page.evaluate("""() => ['概', '览', '上', '线'].map(ch => {
                const s = document.createElement('span'); s.textContent = ch; document.body.appendChild(s);
                const w = s.getBoundingClientRect().width; s.remove(); return w; })""")
            assert all(w > 8 for w in widths)
        browser.close()


def test_the_go_live_page_turns_green_as_a_debugging_round_passes(site):
    from isvapp.standins import simulator

    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(locale="en-US")
        log_in(page, site.url)
        page.goto(site.url + "/admin/go-live")
        new_row = page.locator('tr[data-scenario="period-renew"]')
        assert "not debugged yet" in new_row.inner_text() or "passed" not in new_row.inner_text()
        # The Seller Console's own rounds: sent without the simulator's mark, which only the
        # merchant's simulator sends (a marked round shows "simulated here", never green).
        sim = simulator.run(simulator.Simulator(site.url, KEY, mark=False), ["seller-console"], "g2")
        assert not sim.failed, simulator.report(sim)
        page.reload()
        for scenario in ("new", "query", "renew", "expire", "release"):
            row = page.locator(f'tr[data-scenario="period-{scenario}"]')
            assert "passed" in row.inner_text(), scenario
            assert row.evaluate("r => getComputedStyle(r.cells[0]).backgroundColor") == "rgb(241, 251, 244)"
        page.screenshot(path=str(ARTIFACTS / "go-live-green.png"), full_page=True)
        browser.close()
