"""The alerts page: each channel's settings, last delivery and last failure (as the alert jobs and the
test messages recorded them, over real local receivers), a test message per channel, and the
notices switched on and off for every host, over the configuration file's default."""

import json
import re

import pytest
from isvapp import create_app, settings
from isvapp.background import alerts, notices, status, worker
from isvapp.background.channels import CHANNELS
from isvapp.extensions import db
from isvapp.settings import settings_of
from isvapp.storage.models import Alert, Instance, Job, StatusItem
from isvapp.storage.transactions import write_transaction

from .helpers import (
    DING_SECRET,
    DING_TOKEN,
    FEISHU_HOOK,
    FEISHU_SECRET,
    WECOM_KEY,
    Robots,
    new_order,
    robot_config,
    token,
)

SMTP_PASSWORD = "hunter2-smtp-password"


@pytest.fixture
def channels(app, robots, mailbox):
    """Every channel configured, to the local receivers."""
    app.config.update(
        robot_config(robots),
        ALERT_EMAIL_TO="merchant@example.com",
        ALERT_SMTP_HOST="127.0.0.1",
        ALERT_SMTP_PORT=mailbox.port,
        ALERT_SMTP_TLS="none",
        ALERT_SMTP_FROM="isvapp@example.com",
        ALERT_SMTP_PASSWORD=SMTP_PASSWORD,  # set, unused (no ALERT_SMTP_USER): never shown
    )
    settings.init_app(app)  # the settings are read when the app is made: again
    return robots, mailbox


SECRETS = (WECOM_KEY, DING_TOKEN, DING_SECRET, FEISHU_HOOK, FEISHU_SECRET, SMTP_PASSWORD)


def row(page, channel):
    return re.search(rf'<tr data-channel="{channel}"[^>]*>(.*?)</tr>', page, re.S).group(1)


def cell(page, channel, name):
    return re.search(rf'<td class="{name}">(.*?)</td>', row(page, channel), re.S).group(1)


def text_of(html):
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html)).replace("&#34;", '"').strip()


def test_each_channel_shows_its_settings_last_delivery_and_last_failure_and_never_a_secret(
    app, market, admin_client, channels
):
    robots, mailbox = channels
    robots.script["wecom"] = [{"errcode": 93000, "errmsg": "invalid webhook url"}]
    with app.app_context():
        with write_transaction():
            alerts.raise_alert("internal_error", "isvapp answered 000005", "A database error.")
        assert worker.work(until_idle=True, max_jobs=10) == 2  # WeCom failed once; the retry sent it
    assert len(robots.received["wecom"]) == 2 and len(mailbox.messages) == 1
    page = admin_client.get("/admin/alerts").get_data(as_text=True)
    failed, delivered = text_of(cell(page, "wecom", "failed")), text_of(cell(page, "wecom", "delivered"))
    assert "wecom: errcode 93000: invalid webhook url" in failed and "test message" not in failed
    assert 'The channel answered: {"errcode": 0, "errmsg": "ok"}' in delivered
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", delivered) and re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", failed)
    mail = text_of(cell(page, "email", "delivered"))
    assert f"The mail server 127.0.0.1:{mailbox.port} took it for merchant@example.com." in mail
    assert text_of(cell(page, "email", "failed")) == "never"
    for channel in ("dingtalk", "feishu"):
        assert "The channel answered" in cell(page, channel, "delivered")
    settings = text_of(cell(page, "email", "settings"))
    assert "ALERT_SMTP_PASSWORD set" in settings and "ALERT_SMTP_USER not set" in settings
    assert text_of(cell(page, "dingtalk", "settings")) == "ALERT_DINGTALK_URL set, ALERT_DINGTALK_SECRET set"
    assert not [s for s in SECRETS if s in page]
    chinese = admin_client.get("/admin/alerts?lang=zh").get_data(as_text=True)
    assert "最近一次送达" in chinese and "已设置" in chinese and "渠道的应答" in chinese
    with app.app_context():
        kept = status.read("alert_delivered:wecom", "alert_failed:wecom")
    assert kept["alert_delivered:wecom"][0]["test"] is False and kept["alert_failed:wecom"][0]["test"] is False


def send_test(client, channel, lang=None):
    page = client.get("/admin/alerts" + (f"?lang={lang}" if lang else "")).get_data(as_text=True)
    return client.post("/admin/alerts", data={"csrf_token": token(page), "test": channel})


def test_a_test_message_per_channel_arrives_now_and_the_page_says_what_the_channel_answered(
    app, market, admin_client, channels
):
    robots, mailbox = channels
    app.config["ALERT_LANGUAGE"] = "en"
    settings.init_app(app)  # the settings are read when the app is made: again
    for channel in CHANNELS:
        answer = send_test(admin_client, channel)
        assert answer.status_code == 200, channel
        tested = text_of(re.search(r'id="tested"[^>]*>(.*?)</p>', answer.get_data(as_text=True), re.S).group(1))
        name = {"email": "e-mail", "wecom": "WeCom", "dingtalk": "DingTalk", "feishu": "Feishu"}[channel]
        assert tested.startswith(f"The test message to {name} arrived."), tested
        if channel == "email":
            assert f"The mail server 127.0.0.1:{mailbox.port} took it for merchant@example.com." in tested
        else:
            assert f"The channel answered: {json.dumps(Robots.OK[channel], ensure_ascii=False)}" in tested
    [(_, to, message)] = mailbox.messages
    assert to == ["merchant@example.com"] and "by boss from the Alerts page" in message.get_content()
    for channel in ("wecom", "dingtalk", "feishu"):
        [sent] = robots.received[channel]
        content = sent["json"]["text"]["content"] if channel != "feishu" else sent["json"]["content"]["text"]
        assert content.startswith("[isvapp] Test alert") and "by boss from the Alerts page" in content
    assert market.count(Job) == 0  # sent at once, not through the queue
    page = admin_client.get("/admin/alerts").get_data(as_text=True)
    assert "(test message)" in text_of(cell(page, "feishu", "delivered"))

    robots.script["dingtalk"] = [{"errcode": 310000, "errmsg": "sign not match"}]
    answer = send_test(admin_client, "dingtalk", lang="zh")
    page = answer.get_data(as_text=True)
    tested = text_of(re.search(r'id="tested"[^>]*>(.*?)</p>', page, re.S).group(1))
    assert answer.status_code == 200 and tested.startswith("发往钉钉的测试消息未送达。"), tested
    assert "dingtalk: errcode 310000: sign not match" in tested and DING_SECRET not in page
    assert "测试消息" in text_of(cell(page, "dingtalk", "failed"))
    app.config["ALERT_LANGUAGE"] = "zh"
    settings.init_app(app)  # the settings are read when the app is made: again
    assert send_test(admin_client, "wecom", lang="zh").status_code == 200
    assert "由 boss 于" in robots.received["wecom"][-1]["json"]["text"]["content"]  # ALERT_LANGUAGE's words


@pytest.mark.parametrize(
    "channel, says",
    [
        ("wecom", "WeCom is not configured: set its settings in the configuration file and restart. Nothing was sent."),
        ("sms", "Unknown channel: choose e-mail, WeCom, DingTalk or Feishu. Nothing was sent."),
        ("", "Unknown channel"),
    ],
)
def test_a_test_message_to_a_channel_not_configured_is_refused_and_sends_nothing(
    app, market, admin_client, robots, channel, says
):
    app.config.update({k: v for k, v in robot_config(robots).items() if k != "ALERT_WECOM_URL"})
    settings.init_app(app)  # the settings are read when the app is made: again
    page = admin_client.get("/admin/alerts").get_data(as_text=True)
    assert 'value="wecom"' not in page and 'value="dingtalk"' in page  # a button per configured channel
    answer = send_test(admin_client, channel)
    assert answer.status_code == 400 and says in answer.get_data(as_text=True)
    assert all(received == [] for received in robots.received.values())
    assert market.count(StatusItem, StatusItem.name.like("alert_%")) == 0


def created(market, order):
    answer = json.loads(market.g2(new_order(order=order)).data)
    assert answer["resultCode"] == "000000"
    return answer["instanceId"]


def choose(client, *kinds, use_file=False):
    page = client.get("/admin/alerts").get_data(as_text=True)
    form = {"csrf_token": token(page), "notice": list(kinds), **({"use_file": "1"} if use_file else {"save": "1"})}
    return client.post("/admin/alerts", data=form)


def checked(page):
    return sorted(re.findall(r'<input type="checkbox" name="notice" value="(\w+)" checked>', page))


@pytest.mark.parametrize("app_config", [{"ALERT_NOTICES": "release", "ALERT_LANGUAGE": "en"}])
def test_notices_chosen_on_the_page_win_over_the_file_for_every_host_until_handed_back(
    app, market, admin_client, tmp_path
):
    page = admin_client.get("/admin/alerts").get_data(as_text=True)
    assert checked(page) == ["release"] and 'data-source="file"' in page and "no choice was made" in page
    answer = choose(admin_client, "new_order")
    assert answer.status_code == 302 and answer.headers["Location"] == "/admin/alerts#notices"
    page = admin_client.get("/admin/alerts").get_data(as_text=True)
    assert checked(page) == ["new_order"] and 'data-source="page"' in page
    source = text_of(re.search(r'id="notices-source"[^>]*>(.*?)</p>', page, re.S).group(1))
    assert "by boss, for every host" in source and source.endswith("says: release")
    assert "notices chosen here are in force on every host" in page
    # another host: the same database, its own configuration file saying "release"
    other = create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(tmp_path / "host2"),
            "SECRET_KEY": "test-secret",
            "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            "ALERT_NOTICES": "release",
        }
    )
    with other.app_context():
        assert notices.in_force(settings_of(other)).kinds == ["new_order"]
        assert notices.scan() == {}  # the first look starts from now
    iid = created(market, "NOTICED-1")
    market.g2({"activity": "releaseInstance", "instanceId": iid, "testFlag": "0"})
    with other.app_context():
        assert notices.scan() == {"new_order": 1}  # the release is not news: switched off on the page
        db.engine.dispose()
    assert [a.kind for a in market.rows(Alert)] == ["new_order"]

    assert choose(admin_client, use_file=True).status_code == 302
    page = admin_client.get("/admin/alerts").get_data(as_text=True)
    assert checked(page) == ["release"] and 'data-source="file"' in page and "handed back to it" in page
    with app.app_context():
        assert notices.in_force(settings_of(app)).kinds == ["release"]


def test_an_unknown_notice_is_refused_and_changes_nothing(app, market, admin_client):
    answer = choose(admin_client, "new_order", "sms")
    assert answer.status_code == 400 and "Unknown notice" in answer.get_data(as_text=True)
    with app.app_context():
        assert notices.in_force(settings_of(app)).source == "file" and status.read(notices.CHOICE) == {}


def test_a_notice_switched_on_again_does_not_report_what_happened_while_it_was_off(app, market, admin_client):
    assert choose(admin_client, "new_order").status_code == 302
    with app.app_context():
        assert notices.scan() == {}  # the first look starts from now
    assert choose(admin_client).status_code == 302  # every notice off
    missed = created(market, "WHILE-OFF")
    with app.app_context():
        assert notices.scan() is None
    assert choose(admin_client, "new_order").status_code == 302
    with app.app_context():
        assert notices.scan() == {}  # WHILE-OFF happened before new_order was on again
    created(market, "AFTER-ON")
    with app.app_context():
        assert notices.scan() == {"new_order": 1}
        [notice] = db.session.execute(db.select(Alert)).scalars().all()
        subject, text = notices.render(notice, settings_of(app))
    assert "AFTER-ON" in text and "WHILE-OFF" not in text
    assert market.count(Instance, Instance.instance_id == missed) == 1


def test_an_order_after_the_switch_on_the_page_is_news_though_it_came_before_the_first_scan(app, market, admin_client):
    created(market, "BEFORE-ON")
    assert choose(admin_client, "new_order").status_code == 302
    created(market, "BETWEEN")  # no worker has looked yet (it was restarting, say)
    with app.app_context():
        assert notices.scan() == {"new_order": 1}
        [notice] = db.session.execute(db.select(Alert)).scalars().all()
        _subject, text = notices.render(notice, settings_of(app))
    assert "BETWEEN" in text and "BEFORE-ON" not in text
