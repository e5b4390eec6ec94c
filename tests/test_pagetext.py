"""The Chinese tour's reader (tests/pagetext.py) finds what it must: English words outside data and
code, and a badge or a column header broken over two lines, in Chromium."""

import shutil

import pytest
from playwright.sync_api import sync_playwright

from . import pagetext

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><style>
table { width: 300px; } .badge { border: 1px solid; } .nowrap { white-space: nowrap; }
</style></head><body>
<p>状态：ACTIVE</p>
<p>最近心跳在 3 秒前 <code>.venv/bin/isvapp jobs list --state dead</code></p>
<p>设置 KOO_ACCESS_KEY 和 PROXY_FIX_HOPS，见 docs/deploy.md 与 https://example.com/a?b=c</p>
<p>字段 testFlag 与 X-Forwarded-Proto，结果码 000001，G2</p>
<p translate="no">Fake Customer</p><p>客户：<span translate="no">Acme Ltd</span></p>
<input placeholder="Search">
<table><tr><th>已发送的告警通知时间</th><th class="nowrap">已发送的告警通知时间</th><th class="nowrap">名称</th>
<th>名</th><th>名</th><th>名</th><th>名</th><th>名</th></tr></table>
<div style="width: 40px"><span class="badge">已释放</span> <span class="badge nowrap">已释放</span></div>
</body></html>"""


@pytest.mark.parametrize(
    "text, english",
    [
        ("状态：ACTIVE", ["ACTIVE"]),
        ("最近心跳在 3 秒前", []),
        ("last heartbeat 3 s ago", ["last", "heartbeat", "s", "ago"]),
        ("done (1/12)", ["done"]),
        ("设置 KOO_ACCESS_KEY 与 ALERT_SMTP_*（见 docs/deploy.md）", []),
        ("isvapp 中的 Key 与 SaaS、License 和 Kit", []),
        ("通过 https://x.example.com/sso 转交", []),
        ("实例 3f34d9d4-98b5-4ab7-bacf-575ac60b34dd", []),
        ("orgCode sim-x 重复", ["sim", "x"]),  # a value not marked as data is read as words
    ],
)
def test_english_words(text, english):
    assert pagetext.english_words(text) == english


@pytest.mark.live
def test_the_reader_finds_english_outside_data_and_a_badge_or_header_that_wraps():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.set_content(PAGE)
            seen = pagetext.read(page)
        finally:
            browser.close()
    assert set(seen["english"]) == {"ACTIVE", "Search"}, seen["english"]
    assert sorted(seen["wrapped"]) == ["span.badge: 已释放", "th: 已发送的告警通知时间"], seen["wrapped"]
