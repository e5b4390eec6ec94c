"""Operating isvapp from the browser, as the merchant does it: Chromium (Playwright) against a real
gunicorn and a real worker on loopback, with local receivers for the alert channels and the
provisioning webhook.

- a test message per channel, clicked on the alerts page, arrives at the receiver and the page says
  so, in English and in Chinese;
- dead jobs made by the worker (a webhook to a closed port, one attempt) retried and given up on the
  jobs page, and what the worker does with each after;
- the notices switched on the alerts page, kept across a restart, change what the worker sends.
"""

import json
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
import requests
from isvapp.koo.signing import g2_signed_request
from isvapp.standins.fakemarket import create_fake_market
from isvapp.standins.serving import Running
from isvapp.storage.models import Alert, Event, Instance, Job, JobState, StatusItem
from playwright.sync_api import sync_playwright
from sqlalchemy import func, select
from werkzeug.wrappers import Request, Response

from . import pagetext
from .helpers import KEY, PASSWORD, Mailbox, Robots, close_notice_windows, new_order, robot_config
from .live import ROOT, LiveServer, free_port, stop_process

pytestmark = pytest.mark.live  # Chromium against a real gunicorn and worker

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "artifacts"
AK, SK = "operating-ak", "operating-sk"
SECRET = "whsec_b3BlcmF0aW5nLXNlY3JldC0wMTIzNDU2Nzg5"


def launch(p):
    return p.chromium.launch(
        executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    )


def log_in(page, url, lang):
    page.goto(url + f"/admin/login?lang={lang}")
    page.fill("input[name=name]", "boss")
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert "/admin/login" not in page.url, page.inner_text("main")


def click(page, selector):
    """Click a form's button and wait for the page it leads to; returns that page's status."""
    with page.expect_navigation() as navigation:
        page.click(selector)
    return navigation.value.status


def wait_until(what, seconds, step=0.5):
    """Poll ``what`` until it returns something true, at most ``seconds``; returns its last value."""
    deadline = time.monotonic() + seconds
    while True:
        found = what()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(step)


class Worker:
    """`flask worker` beside the server, with the server's settings; its log in the instance folder."""

    def __init__(self, server, name="worker"):
        self.log = open(server.instance_path / f"{name}.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "isvapp", "worker", "--poll", "0.2"],
            cwd=ROOT,
            env=server.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def stop(self):
        stop_process(self.proc)
        self.log.close()


def send_order(url, order):
    raw, query = g2_signed_request(KEY, new_order(order=order))
    answer = requests.post(
        url + "/produce", params=query, data=raw, headers={"Content-Type": "application/json"}, timeout=10
    ).json()
    assert answer["resultCode"] == "000000", answer
    return answer["instanceId"]


# --- a test message per channel ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def receivers():
    from aiosmtpd.controller import Controller

    robots, mailbox = Robots(), Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    mailbox.port = controller.port
    try:
        with Running(robots) as running:
            robots.base = running.url
            yield robots, mailbox
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def channel_site(tmp_path_factory, receivers):
    robots, mailbox = receivers
    env = {f"ISVAPP_{k}": str(v) for k, v in robot_config(robots).items()}
    env.update(
        ISVAPP_KOO_ACCESS_KEY=KEY,
        ISVAPP_ALERT_EMAIL_TO="merchant@example.com",
        ISVAPP_ALERT_SMTP_HOST="127.0.0.1",
        ISVAPP_ALERT_SMTP_PORT=str(mailbox.port),
        ISVAPP_ALERT_SMTP_TLS="none",
        ISVAPP_ALERT_SMTP_FROM="isvapp@example.com",
    )
    server = LiveServer(tmp_path_factory.mktemp("channels"), workers=2, env=env)
    server.flask("init-db")
    server.flask("create-admin", "boss", "--password", PASSWORD)
    with server:
        yield server


ARRIVED = {"en": "arrived", "zh": "已送达"}
NOT_ARRIVED = {"en": "did not arrive", "zh": "未送达"}
TEST_MESSAGE = {"en": "(test message)", "zh": "(测试消息)"}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_test_message_clicked_on_the_alerts_page_reaches_the_receiver_and_the_page_says_so(
    channel_site, receivers, lang
):
    robots, mailbox = receivers
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(
                locale="zh-CN" if lang == "zh" else "en-US", viewport={"width": 1280, "height": 900}
            )
            log_in(page, channel_site.url, lang)
            page.goto(channel_site.url + "/admin/alerts")
            channels = ["wecom", "email"] + (["dingtalk", "feishu"] if lang == "en" else [])
            for channel in channels:
                before = len(mailbox.messages) if channel == "email" else len(robots.received[channel])
                assert click(page, f'tr[data-channel="{channel}"] button[name=test]') == 200
                tested = page.inner_text("#tested")
                assert ARRIVED[lang] in tested, (channel, tested)
                if channel == "email":
                    assert len(mailbox.messages) == before + 1 and "merchant@example.com" in tested
                    content = mailbox.messages[-1][2].get_content()
                else:
                    assert len(robots.received[channel]) == before + 1
                    assert json.dumps(Robots.OK[channel], ensure_ascii=False) in tested  # the channel's answer
                    sent = robots.received[channel][-1]["json"]
                    content = sent["text"]["content"] if channel != "feishu" else sent["content"]["text"]
                assert "boss" in content, content  # who clicked, in ALERT_LANGUAGE (zh by default)
                delivered = page.inner_text(f'tr[data-channel="{channel}"] td.delivered')
                assert TEST_MESSAGE[lang] in delivered, delivered  # its last delivery: this test message
            if lang == "zh":
                page.screenshot(path=str(ARTIFACTS / "page-alerts-zh.png"), full_page=True)
                seen = pagetext.read(page)
                assert not seen["english"] and not seen["wrapped"], seen
            robots.script["wecom"] = [{"errcode": 93000, "errmsg": "invalid webhook url"}]
            before = len(robots.received["wecom"])
            assert click(page, 'tr[data-channel="wecom"] button[name=test]') == 200
            tested = page.inner_text("#tested")
            assert NOT_ARRIVED[lang] in tested and "errcode 93000" in tested, tested
            assert len(robots.received["wecom"]) == before + 1
            assert "93000" in page.inner_text('tr[data-channel="wecom"] td.failed')
            if lang == "en":
                page.screenshot(path=str(ARTIFACTS / "page-alerts-en.png"), full_page=True)
        finally:
            browser.close()


# --- dead jobs retried and given up ------------------------------------------------------------------


class Hooks:
    """The merchant's webhook receiver: records each event's id and answers 204."""

    def __init__(self):
        self.ids = []

    def __call__(self, environ, start_response):
        self.ids.append(json.loads(Request(environ).get_data())["id"])
        return Response(status=204)(environ, start_response)


def provision_jobs(engine, *states):
    with engine.connect() as conn:
        return conn.execute(
            select(Job)
            .join(Event, Event.event_id == Job.key)
            .where(Job.kind == "provision", Event.kind == "created", Job.state.in_(states))
            .order_by(Job.id)
        ).all()


def job_of(engine, job_id):
    with engine.connect() as conn:
        return conn.execute(select(Job).where(Job.id == job_id)).one()


def test_retry_and_give_up_clicked_on_dead_jobs_a_real_worker_made(tmp_path):
    hook_port = free_port()  # nothing listens here until the retry
    with Running(create_fake_market(AK, SK, KEY)) as market:
        env = {
            "ISVAPP_KOO_ACCESS_KEY": KEY,
            "ISVAPP_KOO_AK": AK,
            "ISVAPP_KOO_SK": SK,
            "ISVAPP_KOO_API_BASE_URL": market.url,
            "ISVAPP_JOB_MAX_ATTEMPTS": "1",
            "ISVAPP_PROVISIONER": "isvapp.provisioning:WebhookProvisioner",
            "ISVAPP_WEBHOOK_URL": f"http://127.0.0.1:{hook_port}/hook",
            "ISVAPP_WEBHOOK_SECRET": SECRET,
        }
        server = LiveServer(tmp_path, workers=2, env=env)
        server.flask("init-db")
        server.flask("create-admin", "boss", "--password", PASSWORD)
        worker, engine = None, server.engine()
        try:
            server.start()
            worker = Worker(server)
            send_order(server.url, "DEADHOOK1")
            send_order(server.url, "DEADHOOK2")
            dead = wait_until(lambda: len(provision_jobs(engine, JobState.DEAD)) == 2, 60)
            assert dead, provision_jobs(engine, *JobState.ALL)
            first, second = provision_jobs(engine, JobState.DEAD)
            assert "Connection refused" in first.last_error and first.attempts == 1
            hooks = Hooks()
            with sync_playwright() as p, Running(hooks, port=hook_port):
                browser = launch(p)
                try:
                    page = browser.new_page(locale="zh-CN", viewport={"width": 1280, "height": 900})
                    log_in(page, server.url, "zh")
                    page.goto(server.url + "/admin/")
                    with page.expect_navigation():
                        page.click("#dead-jobs a")
                    assert "state=dead" in page.url
                    shown = {int(r.get_attribute("data-job")) for r in page.locator("tr[data-job]").all()}
                    assert {first.id, second.id} <= shown
                    with page.expect_navigation():
                        page.click(f'tr[data-job="{first.id}"] a >> nth=0')
                    assert "Connection refused" in page.inner_text("#last-error")
                    assert click(page, "#retry button") == 200
                    assert "已重新排队" in page.inner_text("main")
                    done = wait_until(lambda: job_of(engine, first.id).state == JobState.DONE, 30)
                    assert done and first.key in hooks.ids, (job_of(engine, first.id), hooks.ids)
                    assert job_of(engine, first.id).attempts == 1  # a fresh set: 0, then this run

                    page.goto(server.url + f"/admin/jobs/{second.id}")
                    page.fill("#give-up input[name=reason]", "订单已退款 refunded")
                    assert click(page, "#give-up button") == 200
                    assert "已放弃" in page.inner_text("h1") and "订单已退款 refunded" in page.inner_text(
                        "#given-up-reason"
                    )
                    assert "boss" in page.inner_text("#given-up")
                    page.screenshot(path=str(ARTIFACTS / "page-job-zh.png"), full_page=True)
                    page.goto(server.url + "/admin/jobs")
                    seen = pagetext.read(page)
                    assert not seen["english"] and not seen["wrapped"], seen
                    page.screenshot(path=str(ARTIFACTS / "page-jobs-zh.png"), full_page=True)
                finally:
                    browser.close()
                given = job_of(engine, second.id)
                assert (given.state, given.given_up_by, given.given_up_reason) == (
                    JobState.GIVEN_UP,
                    "boss",
                    "订单已退款 refunded",
                )
                # The worker goes on: a later order's hook is delivered, the given-up one never is.
                send_order(server.url, "DEADHOOK3")
                later = wait_until(lambda: provision_jobs(engine, JobState.DONE)[1:], 30)
                assert later, provision_jobs(engine, *JobState.ALL)
                assert second.key not in hooks.ids and later[0].key in hooks.ids
                with engine.connect() as conn:  # the details_fetched events' hooks died too (closed port)
                    dead = conn.execute(
                        select(func.count()).select_from(Job).where(Job.state == JobState.DEAD)
                    ).scalar()
                retried = server.flask("jobs", "retry", "--all-dead").stdout
                assert f"queued again: {dead} job(s)" in retried  # every dead one, never the given-up one
            still = job_of(engine, second.id)
            assert (still.state, still.attempts, still.updated_at) == (JobState.GIVEN_UP, 1, given.updated_at)
        finally:
            if worker:
                worker.stop()
            server.stop()
            engine.dispose()


# --- the notices, switched on the page, across a restart ---------------------------------------------


@contextmanager
def alerts_page(url):
    """Chromium, logged in, on the alerts page (in English)."""
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(locale="en-US")
            log_in(page, url, "en")
            page.goto(url + "/admin/alerts")
            yield page
        finally:
            browser.close()


def new_order_notices(engine):
    """How many new orders the new_order notices raised so far have counted."""
    with engine.connect() as conn:
        return conn.execute(select(func.coalesce(func.sum(Alert.count), 0)).where(Alert.kind == "new_order")).scalar()


def cursor(engine):
    with engine.connect() as conn:
        value = conn.execute(select(StatusItem.value).where(StatusItem.name == "notices_cursor")).scalar()
    return int((value or {}).get("event") or 0)


def created_event(engine, instance_id):
    with engine.connect() as conn:
        return conn.execute(
            select(Event.id).where(Event.instance_id == instance_id, Event.kind == "created")
        ).scalar_one()


def notice_messages(robots):
    return [
        r["json"]["text"]["content"] for r in robots.received["wecom"] if "new order(s)" in r["json"]["text"]["content"]
    ]


def test_notices_switched_on_the_page_change_what_the_worker_sends_across_a_restart(tmp_path):
    robots = Robots()
    with Running(robots) as running, Running(create_fake_market(AK, SK, KEY)) as market:
        robots.base = running.url
        env = {
            "ISVAPP_KOO_ACCESS_KEY": KEY,
            "ISVAPP_KOO_AK": AK,
            "ISVAPP_KOO_SK": SK,
            "ISVAPP_KOO_API_BASE_URL": market.url,
            "ISVAPP_ALERT_WECOM_URL": robot_config(robots)["ALERT_WECOM_URL"],
            "ISVAPP_ALERT_LANGUAGE": "en",
            "ISVAPP_ALERT_NOTICE_GROUP_MIN": "1",  # the shortest window: a notice waits at most a minute
            "ISVAPP_JOB_PERIODIC_S": "1",  # the worker looks for news every second, not every 30
        }
        server = LiveServer(tmp_path, workers=2, env=env)  # ALERT_NOTICES unset: none in the file
        server.flask("init-db")
        server.flask("create-admin", "boss", "--password", PASSWORD)
        worker, engine = None, server.engine()
        try:
            server.start()
            worker = Worker(server)
            with alerts_page(server.url) as page:
                assert page.get_attribute("#notices-source", "data-source") == "file"
                page.check('input[name=notice][value="new_order"]')
                page.check('input[name=notice][value="release"]')
                assert click(page, "#notices button[name=save]") == 200
                assert page.get_attribute("#notices-source", "data-source") == "page"
            worker.stop()
            server.stop()  # the restart: the choice is in the database, not in a process
            server.start()
            worker = Worker(server)
            with alerts_page(server.url) as page:
                assert page.get_attribute("#notices-source", "data-source") == "page"
                assert page.is_checked('input[name=notice][value="new_order"]')

                # the notice goes once its window closes: a minute, skipped once the order is counted
                assert close_notice_windows(engine, created_event(engine, send_order(server.url, "NOTICE-ON")))
                arrived = wait_until(lambda: notice_messages(robots), 150, step=1)
                assert arrived and "NOTICE-ON" in arrived[0] and arrived[0].startswith("[isvapp] 1 new order(s)")

                page.goto(server.url + "/admin/alerts")
                page.uncheck('input[name=notice][value="new_order"]')
                assert click(page, "#notices button[name=save]") == 200
                assert not page.is_checked('input[name=notice][value="new_order"]')
                assert page.is_checked('input[name=notice][value="release"]')
            counted = new_order_notices(engine)
            event = created_event(engine, send_order(server.url, "NOTICE-OFF"))
            # The worker looked past the order (release is still on, so it reads the events): had
            # new_order been on, its notice would have been raised in that same transaction.
            assert wait_until(lambda: cursor(engine) >= event, 60, step=1), (cursor(engine), event)
            assert new_order_notices(engine) == counted == 1
            assert len(notice_messages(robots)) == 1 and not any("NOTICE-OFF" in m for m in notice_messages(robots))
            with engine.connect() as conn:
                assert conn.execute(select(func.count()).select_from(Instance)).scalar() == 2
        finally:
            if worker:
                worker.stop()
            server.stop()
            engine.dispose()
