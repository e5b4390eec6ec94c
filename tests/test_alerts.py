"""Alerts: one row per kind and window, delivered once per channel by a job, over real local receivers."""

import base64
import hashlib
import hmac
import json
import socket
import ssl
import time
from datetime import datetime, timedelta
from email.header import decode_header, make_header

import isvapp.settings
import pytest
from isvapp.background import alerts, channels, jobs, status, worker
from isvapp.extensions import db
from isvapp.storage.models import Alert, Job, JobState
from isvapp.storage.transactions import write_transaction
from sqlalchemy import select

from .helpers import (
    DING_SECRET,
    DING_TOKEN,
    FEISHU_HOOK,
    FEISHU_SECRET,
    WECOM_KEY,
    Robots,
    live_alert_env,
    localhost_resolving_to,
    other_local_address,
    robot_config,
    self_signed_tls,
    serving,
)

NOW = datetime(2026, 11, 25, 5, 17)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_in_transaction(app, kind="test", subject="Something broke", text="Details here.", now=NOW):
    with app.app_context():
        with write_transaction():
            return alerts.raise_alert(kind, subject, text, now=now)


def run(app):
    with app.app_context():
        return worker.work(until_idle=True, max_jobs=50)


def alert_rows(market, *where):
    return market.rows(Alert, *where)


# --- e-mail ---------------------------------------------------------------------------------------


def test_email_is_delivered_over_smtp(app, market, mailbox):
    app.config.update(
        ALERT_EMAIL_TO="ops@example.com, boss@example.com",
        ALERT_SMTP_HOST="127.0.0.1",
        ALERT_SMTP_PORT=mailbox.port,
        ALERT_SMTP_TLS="none",
        ALERT_SMTP_FROM="isvapp@example.com",
    )
    isvapp.settings.init_app(app)  # read once per app: read them again
    raise_in_transaction(app, subject="Order query failing 订单", text="The order API answered 401.")
    run(app)
    [(sender, recipients, message)] = mailbox.messages
    assert sender == "isvapp@example.com" and recipients == ["ops@example.com", "boss@example.com"]
    assert str(make_header(decode_header(message["Subject"]))) == "[isvapp] Order query failing 订单"
    assert "The order API answered 401." in message.get_content()
    [alert] = alert_rows(market)
    assert alert.sent_at is not None


def test_plain_smtp_is_refused_to_a_remote_host(app, market):
    app.config.update(
        ALERT_EMAIL_TO="ops@example.com",
        ALERT_SMTP_HOST="smtp.example.com",
        ALERT_SMTP_TLS="none",
        ALERT_SMTP_PASSWORD="hunter2-very-secret",
    )
    isvapp.settings.init_app(app)  # read once per app: read them again
    raise_in_transaction(app)
    run(app)
    [job] = market.rows(Job, Job.kind == "alert")
    assert job.state == JobState.DEAD and "loopback" in job.last_error  # a setting: no retrying
    assert "hunter2" not in job.last_error
    assert alert_rows(market)[0].sent_at is None
    assert alert_rows(market, Alert.kind == "dead_job") == []  # a dead alert job raises no alert


def test_a_direct_alert_that_cannot_be_delivered_raises_no_alert_about_itself(app, market):
    app.config.update(ALERT_DINGTALK_URL="http://127.0.0.1:9/robot/send", JOB_RETRY_BASE_S=0, JOB_MAX_ATTEMPTS=2)
    isvapp.settings.init_app(app)  # read once per app: read them again
    with app.app_context():
        alerts.raise_alert_alone("disk_low", "Disk space is low", "1% free")
    run(app)
    [job] = market.rows(Job, Job.kind == alerts.DIRECT_JOB)
    assert job.state == JobState.DEAD and job.attempts == 2
    # Its failing try and its death would be sent through the channel that is failing: a loop.
    assert [alert.kind for alert in alert_rows(market)] == ["disk_low"]


# --- robots ---------------------------------------------------------------------------------------


def test_robots_get_their_documented_json_and_valid_signatures(app, market, robots):
    app.config.update(robot_config(robots))
    isvapp.settings.init_app(app)  # read once per app: read them again
    raise_in_transaction(app, subject="Disk low", text="3% free.")
    started = time.time()
    run(app)
    [wecom], [ding], [feishu] = robots.received["wecom"], robots.received["dingtalk"], robots.received["feishu"]
    content = "[isvapp] Disk low\n\n3% free."
    assert wecom["json"] == {"msgtype": "text", "text": {"content": content}}
    assert wecom["args"] == {"key": WECOM_KEY} and wecom["content_type"].startswith("application/json")

    assert ding["json"] == {"msgtype": "text", "text": {"content": content}}
    assert set(ding["args"]) == {"access_token", "timestamp", "sign"} and ding["args"]["access_token"] == DING_TOKEN
    timestamp = ding["args"]["timestamp"]
    assert abs(int(timestamp) / 1000 - started) < 60
    expected = base64.b64encode(
        hmac.new(DING_SECRET.encode(), f"{timestamp}\n{DING_SECRET}".encode(), hashlib.sha256).digest()
    ).decode()
    assert ding["args"]["sign"] == expected  # werkzeug has URL-decoded it: it was sent URL-encoded

    body = feishu["json"]
    assert set(body) == {"timestamp", "sign", "msg_type", "content"}
    assert body["msg_type"] == "text" and body["content"] == {"text": content}
    assert isinstance(body["timestamp"], str) and abs(int(body["timestamp"]) - started) < 60
    expected = base64.b64encode(
        hmac.new(f"{body['timestamp']}\n{FEISHU_SECRET}".encode(), b"", hashlib.sha256).digest()
    ).decode()
    assert body["sign"] == expected
    assert alert_rows(market)[0].sent_at is not None


def test_thirty_alike_in_one_window_make_one_alert_and_one_message(app, market, robots):
    app.config.update(ALERT_WECOM_URL=robot_config(robots)["ALERT_WECOM_URL"])
    isvapp.settings.init_app(app)  # read once per app: read them again
    for i in range(30):
        raise_in_transaction(
            app, kind="order_query", subject="Order query failed", text=f"failure {i}", now=NOW + timedelta(seconds=i)
        )
    [alert] = alert_rows(market)
    assert (alert.count, alert.text) == (30, "failure 0")
    assert market.count(Job, Job.kind == "alert") == 1
    run(app)
    [message] = robots.received["wecom"]
    assert "共发生 30 次" in message["json"]["text"]["content"]  # ALERT_LANGUAGE: zh by default
    raise_in_transaction(app, kind="order_query", now=NOW + timedelta(hours=1))  # the next window
    assert len(alert_rows(market)) == 2


def test_a_failing_channel_retries_without_resending_to_the_others(app, market, robots):
    app.config.update(robot_config(robots))
    isvapp.settings.init_app(app)  # read once per app: read them again
    robots.script["dingtalk"] = [{"errcode": 310000, "errmsg": "sign not match"}]
    robots.script["feishu"] = [500]
    raise_in_transaction(app)
    with app.app_context():
        assert worker.run_one("w1").kind == "alert"
    [job] = market.rows(Job, Job.kind == "alert")
    assert job.state == JobState.QUEUED and job.payload["sent"] == ["wecom"]
    assert "dingtalk: errcode 310000" in job.last_error and "feishu: answered HTTP 500" in job.last_error
    for secret in (WECOM_KEY, DING_TOKEN, DING_SECRET, FEISHU_HOOK, FEISHU_SECRET):
        assert secret not in job.last_error
    assert alert_rows(market)[0].sent_at is None
    run(app)
    [job] = market.rows(Job, Job.kind == "alert")
    assert job.state == JobState.DONE and job.attempts == 2
    assert [len(robots.received[c]) for c in ("wecom", "dingtalk", "feishu")] == [1, 2, 2]
    assert alert_rows(market)[0].sent_at is not None


def test_https_is_required_except_to_loopback(app, market):
    app.config.update(ALERT_WECOM_URL="http://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=" + WECOM_KEY)
    isvapp.settings.init_app(app)  # read once per app: read them again
    raise_in_transaction(app)
    run(app)
    [job] = market.rows(Job, Job.kind == "alert")
    assert job.state == JobState.DEAD and "https" in job.last_error and WECOM_KEY not in job.last_error


@pytest.mark.live
def test_a_plain_http_robot_url_whose_localhost_resolves_elsewhere_is_refused_before_sending(app, monkeypatch):
    """http://localhost passes the URL's check, but the name may resolve to another address (a hosts
    file gone wrong): the robot's key and the alert would cross the network in the clear. The
    address the connection reached is checked (outbound.exchange), and nothing is sent."""
    address = other_local_address()
    if address is None:
        pytest.skip("this host has no address but loopback")
    receiver = Robots()
    with serving(receiver, host=address) as base, localhost_resolving_to(monkeypatch, address):
        url = base.replace(address, "localhost") + "/wecom/cgi-bin/webhook/send?key=" + WECOM_KEY
        app.config.update(ALERT_WECOM_URL=url)
        isvapp.settings.init_app(app)  # read once per app: read them again
        with app.app_context(), pytest.raises(channels.ChannelError) as refused:
            channels.send("wecom", app.extensions["isvapp"], "Disk space is low", "1% free")
    assert "wecom: localhost is not this host" in str(refused.value) and WECOM_KEY not in str(refused.value)
    assert receiver.received["wecom"] == []


@pytest.mark.live
def test_a_robot_certificate_nobody_vouches_for_is_refused_whatever_the_process_default(app, monkeypatch, tmp_path):
    """A robot's TLS is checked with outbound.exchange's own verifying context, not the process's
    default: one turned off (PEP 493's opt-out, which PYTHONHTTPSVERIFY=0 or a sitecustomize use)
    must not let a certificate nobody vouches for take the robot's key."""
    monkeypatch.setattr(ssl, "_create_default_https_context", ssl._create_unverified_context)
    receiver = Robots()
    with serving(receiver, tls=self_signed_tls(tmp_path)) as base:
        app.config.update(ALERT_WECOM_URL=base + "/wecom/cgi-bin/webhook/send?key=" + WECOM_KEY)
        isvapp.settings.init_app(app)  # read once per app: read them again
        with app.app_context(), pytest.raises(channels.ChannelError, match="CERTIFICATE_VERIFY_FAILED") as refused:
            channels.send("wecom", app.extensions["isvapp"], "Disk space is low", "1% free")
    assert WECOM_KEY not in str(refused.value) and receiver.received["wecom"] == []


# --- alert-test -----------------------------------------------------------------------------------


def test_alert_test_sends_to_every_channel_now(app, runner, robots, mailbox, market):
    app.config.update(
        robot_config(robots),
        ALERT_EMAIL_TO="ops@example.com",
        ALERT_SMTP_HOST="127.0.0.1",
        ALERT_SMTP_PORT=mailbox.port,
        ALERT_SMTP_TLS="none",
    )
    isvapp.settings.init_app(app)  # read once per app: read them again
    result = runner.invoke(args=["alert-test"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["email: ok", "wecom: ok", "dingtalk: ok", "feishu: ok"]
    assert len(mailbox.messages) == 1 and all(len(v) == 1 for v in robots.received.values())
    assert market.count(Job) == 0  # not through the queue

    robots.script["feishu"] = [{"code": 19021, "msg": "sign match fail or timestamp is not within one hour"}]
    result = runner.invoke(args=["alert-test"])
    assert result.exit_code == 1
    assert "feishu: code 19021" in result.output and FEISHU_SECRET not in result.output


def test_alert_test_fails_when_nothing_is_configured(runner):
    result = runner.invoke(args=["alert-test"])
    assert result.exit_code == 1 and "no alert channel" in result.output


# --- triggers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("app_config", [{"JOB_RETRY_BASE_S": 0, "JOB_MAX_ATTEMPTS": 2, "ALERT_LANGUAGE": "en"}])
def test_a_dead_job_raises_a_dead_job_alert(app, market, robots, monkeypatch):
    app.config.update(ALERT_WECOM_URL=robot_config(robots)["ALERT_WECOM_URL"])
    isvapp.settings.init_app(app)  # read once per app: read them again

    def always_fails(job):
        raise RuntimeError("the thing is down")

    monkeypatch.setitem(app.extensions["isvapp_jobs"].handlers, "test_fails", always_fails)
    with app.app_context():
        with write_transaction():
            jobs.enqueue("test_fails", "k1")
    run(app)
    [failed] = market.rows(Job, Job.kind == "test_fails")
    assert failed.state == JobState.DEAD
    [alert] = alert_rows(market, Alert.kind == "dead_job")
    assert "test_fails" in alert.subject and "the thing is down" in alert.text and alert.sent_at is not None
    # the first attempt's failure raised job_failed (isvapp/background/failures.py), the last dead_job
    first, last = robots.received["wecom"]
    assert "failed and will be tried again: test_fails" in first["json"]["text"]["content"]
    assert "failed for good: test_fails" in last["json"]["text"]["content"]


def test_check_worker_heartbeat(app, market):
    with app.app_context():
        assert alerts.check_worker_heartbeat(now=NOW) is None  # no worker, but nothing waiting either
        with write_transaction():
            jobs.enqueue("prune", "p1")
        [queued_at] = db.session.execute(select(Job.created_at)).scalars().all()
        db.session.rollback()
        # At start-up a callback may come before the worker's first heartbeat: a grace period
        assert alerts.check_worker_heartbeat(now=queued_at + timedelta(seconds=299)) is None
        assert not db.session.execute(select(Alert)).first()
        db.session.rollback()
        assert alerts.check_worker_heartbeat(now=queued_at + timedelta(seconds=301)) is not None  # never any worker
        assert "the oldest for 301 s" in db.session.execute(select(Alert.text)).scalar_one()
        db.session.execute(Alert.__table__.delete())
        db.session.commit()
        status.report("worker_heartbeat", {"worker": "h:1", "pid": 1}, now=NOW - timedelta(seconds=100))
        assert alerts.check_worker_heartbeat(now=NOW) is None
        assert alerts.check_worker_heartbeat(now=NOW + timedelta(seconds=301)) is not None
    [alert] = alert_rows(market, Alert.kind == "worker_silent")
    assert "401 s old" in alert.text and "h:1" in alert.text


def test_the_worker_reports_a_heartbeat(app):
    with app.app_context():
        worker.work(until_idle=True)
        value, updated_at = status.read("worker_heartbeat")["worker_heartbeat"]
    assert value["worker"] == worker.worker_id() and value["pid"] > 0


@pytest.mark.parametrize("app_config", [{"ALERT_DISK_FREE_PCT": 10}])
def test_low_disk_raises_disk_low(app, market):
    with app.app_context():
        assert alerts.check_disk(usage=lambda _p: (1000, 100, 900)) is None
        assert alerts.check_disk(usage=lambda _p: (1000, 950, 50)) is not None
        alerts.check_disk_periodically(force=True)  # the real disk, through the periodic check: runs
    [alert] = alert_rows(market, Alert.kind == "disk_low")
    assert "5.0% free" in alert.text


def test_raise_alert_alone_swallows_database_errors(app, monkeypatch):
    def broken(*_a, **_k):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(alerts, "insert_ignore", broken)
    with app.app_context():
        assert alerts.raise_alert_alone("x", "s", "t") is None


# --- raised from the request path (isvapp.domain.callbacklog) -------------------------------------------


def test_a_000005_answer_and_repeated_signature_failures_raise_alerts(app, market, monkeypatch):
    import isvapp.produce.g2 as g2
    from isvapp.storage.models import Alert
    from sqlalchemy.exc import OperationalError

    from .helpers import new_order

    def locked(*args, **kwargs):
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(g2.lifecycle, "prepare_new_instance", locked)
    assert json.loads(market.g2(new_order()).data)["resultCode"] == "000005"
    monkeypatch.undo()
    for _ in range(10):
        market.g2(new_order(), key="not-the-key")
    with app.app_context():
        alerts_by_kind = {a.kind: a for a in db.session.execute(select(Alert)).scalars()}
    assert "000005" in alerts_by_kind["internal_error"].subject
    assert "10 requests failed verification" in alerts_by_kind["signature_failures"].text


def test_failing_callbacks_reach_the_local_receivers_through_a_real_gunicorn_and_worker(tmp_path, robots, mailbox):
    """Ten wrong-key calls to a real gunicorn: one signature_failures alert, delivered by the worker
    to the robots and by e-mail, saying how many."""
    import requests
    from isvapp.koo.signing import g2_signed_request

    from .live import LiveServer

    with LiveServer(tmp_path, workers=1, env=live_alert_env(robots, mailbox)) as server:
        for n in range(12):
            raw, query = g2_signed_request(
                "not-the-key",
                {"activity": "newInstance", "orderId": f"A{n}", "orderLineId": f"A{n}-1", "businessId": f"a{n}"},
            )
            answer = requests.post(
                server.url + "/produce",
                params=query,
                data=raw,
                timeout=10,
                headers={"Content-Type": "application/json"},
            ).json()
            assert answer["resultCode"] == "000001"
        time.sleep(0.5)
        server.flask("worker", "--until-idle")
    texts = [r["json"]["text"]["content"] for r in robots.received["wecom"]]
    assert len(texts) == 1 and "failed verification" in texts[0]
    assert len(robots.received["dingtalk"]) == 1 and len(robots.received["feishu"]) == 1
    [(_, to, message)] = mailbox.messages
    assert to == ["merchant@example.com"] and "Signature failures are repeating" in message["Subject"]


def test_with_no_channel_an_alert_is_recorded_shown_and_its_job_done(app, market, client):
    """Default settings: nowhere to send. The job must not fail (a dead job the merchant did not
    cause); the alert waits on the alerts page instead, which the go-live page links."""
    from isvapp.dashboard import security

    from .helpers import log_in

    raise_in_transaction(app, kind="internal_error", subject="isvapp answered 000005 to the marketplace")
    run(app)
    [job] = market.rows(Job, Job.kind == "alert")
    assert (job.state, job.attempts, job.last_error) == (JobState.DONE, 1, None)
    [alert] = alert_rows(market)
    assert alert.sent_at is None
    with app.app_context():
        security.set_password("boss", "a-long-enough-password-1")
    assert log_in(client, password="a-long-enough-password-1").status_code == 302
    page = client.get("/admin/alerts").get_data(as_text=True)
    assert 'data-alert="internal_error"' in page and "isvapp answered 000005 to the marketplace" in page
    assert "not sent" in page
    assert "未发送" in client.get("/admin/alerts?lang=zh").get_data(as_text=True)
    go_live = client.get("/admin/go-live").get_data(as_text=True)
    assert 'data-health="alerts"' in go_live and 'href="/admin/alerts"' in go_live


def test_fields_in_robot_and_mail_texts_cannot_mention_everyone_or_forge_lines(tmp_path, robots, mailbox):
    """Issue 33: an orderId or productId is put into the notices as sent, and Feishu honours
    <at user_id="all"> in a text message (everyone in the group is notified), while a new line in a
    field could pass for a line of isvapp's own. Each field is made inert where a text takes it."""
    import requests
    from isvapp.koo.signing import g1_signed_params, g2_signed_request
    from isvapp.storage.models import Job
    from sqlalchemy import update

    from .helpers import KEY, g1_order, new_order
    from .live import LiveServer

    mention = '<at user_id="all">所有人</at>'
    env = live_alert_env(robots, mailbox, ALERT_NOTICES="new_order", ALERT_LANGUAGE="en")
    with LiveServer(tmp_path, workers=1, env=env) as server:
        server.flask("worker", "--until-idle")  # the notices' first look: from now on
        raw, query = g2_signed_request(KEY, new_order(order=mention))
        answer = requests.post(server.url + "/produce", params=query, data=raw, timeout=10).json()
        assert answer["resultCode"] == "000000", answer
        params = g1_order(order="G1-ORDER\nisvapp: all orders were refunded", productId=mention, testFlag="0")
        answer = requests.get(server.url + "/produce", params=g1_signed_params(KEY, params), timeout=10).json()
        assert answer["resultCode"] == "000000", answer
        server.flask("worker", "--until-idle")  # the scan raises the notice, held until its window closes
        engine = server.engine()
        try:
            with engine.begin() as connection:  # the window has closed
                connection.execute(update(Job).where(Job.kind == "alert").values(run_after=datetime(2000, 1, 1)))
        finally:
            engine.dispose()
        server.flask("worker", "--until-idle")
    # (Without KOO_AK, the G2 order's details job dies too: its alert is another message.)
    [feishu] = [r["json"]["content"]["text"] for r in robots.received["feishu"] if "new order" in str(r["json"])]
    [wecom] = [r["json"]["text"]["content"] for r in robots.received["wecom"] if "new order" in str(r["json"])]
    [message] = [m for _, _, m in mailbox.messages if "new order" in m["Subject"]]
    body = message.get_content()
    for text in (feishu, wecom, body):
        assert "2 new real order(s)" in text, text
        assert "<at" not in text and 'at user_id="all"' in text, text  # still readable, no longer markup
        assert "\nisvapp: all orders were refunded" not in text and "isvapp: all orders were refunded" in text


# --- issue 35: alerts that do not depend on what they report -----------------------------------------


def wecom_texts(robots):
    return [message["json"]["text"]["content"] for message in robots.received["wecom"]]


def wait_for_text(robots, words, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [t for t in wecom_texts(robots) if words in t]
        if found:
            return time.monotonic(), found[0]
        time.sleep(0.2)
    raise AssertionError(f"no WeCom message with {words!r} within {timeout} s: {wecom_texts(robots)}")


def test_a_stopped_worker_is_told_by_the_web_server_and_its_return_too(tmp_path, robots):
    """A real gunicorn (2 workers) and a real worker, a local WeCom robot. The worker stops: the web
    processes themselves raise and deliver worker_silent within ALERT_WORKER_SILENT_S plus a
    minute, and /readyz answers 503; the worker starts again: "running again" follows and /readyz
    answers 200. Before, the message waited in the queue for the worker it was about."""
    import requests

    from .helpers import KEY
    from .live import LiveServer

    silent_s = 4
    env = {
        "ISVAPP_KOO_ACCESS_KEY": KEY,
        "ISVAPP_ALERT_WECOM_URL": robot_config(robots)["ALERT_WECOM_URL"],
        "ISVAPP_ALERT_LANGUAGE": "en",
        "ISVAPP_ALERT_WORKER_SILENT_S": str(silent_s),
        "ISVAPP_ALERT_WATCH_EVERY_S": "1",
        "ISVAPP_JOB_RETRY_BASE_S": "0",
    }
    server = LiveServer(tmp_path, workers=2, env=env)
    server.flask("init-db")
    with server:
        worker = server.flask_popen("worker", "--poll", "0.2")
        try:
            deadline = time.monotonic() + 60
            while requests.get(server.url + "/readyz", timeout=10).status_code != 200:
                assert time.monotonic() < deadline, "the worker never reported"
                time.sleep(0.3)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
        stopped = time.monotonic()
        told_at, told = wait_for_text(robots, "stopped reporting", silent_s + 60)
        ready = requests.get(server.url + "/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["worker"]["heartbeat_age_s"] > silent_s
        print(f"\n[watchdog] worker stopped -> alert at the receiver: {told_at - stopped:.1f} s")
        worker = server.flask_popen("worker", "--poll", "0.2")
        try:
            wait_for_text(robots, "running again", 60)
            assert requests.get(server.url + "/readyz", timeout=10).status_code == 200
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    assert sum("stopped reporting" in t for t in wecom_texts(robots)) == 1  # one message, whichever process sent it


def test_readyz_names_what_is_wrong_and_healthz_stays_the_cheap_check(app, client):
    assert client.get("/healthz").status_code == 200
    never = client.get("/readyz")
    assert never.status_code == 503 and never.json["problems"] == ["no worker has ever reported"]
    with app.app_context():
        status.report("worker_heartbeat", {"worker": "host:1"})
        with write_transaction():
            jobs.enqueue("prune", "r-1")
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["status"] == "ready"
    assert ready.json["worker"]["worker"] == "host:1" and ready.json["queue"]["due"] == 1
    assert ready.json["dead_jobs"] == 0 and ready.headers["Cache-Control"] == "no-store"


def test_the_database_unreachable_is_said_without_the_database_once_per_window_and_host(app, robots, tmp_path):
    app.config.update(ALERT_WECOM_URL=robot_config(robots)["ALERT_WECOM_URL"], ALERT_LANGUAGE="en")
    isvapp.settings.init_app(app)  # read once per app: read them again
    error = RuntimeError("connection refused")
    with app.app_context():
        first = alerts.database_unreachable(app.extensions["isvapp"], str(tmp_path), "worker", error, now=NOW)
        again = alerts.database_unreachable(app.extensions["isvapp"], str(tmp_path), "web", error, now=NOW)
        later = alerts.database_unreachable(
            app.extensions["isvapp"], str(tmp_path), "web", error, now=NOW + timedelta(hours=1)
        )
    assert (first, again, later) == (True, False, True)
    texts = wecom_texts(robots)
    assert len(texts) == 2 and "cannot reach the database (RuntimeError)" in texts[0]
    assert "connection refused" not in texts[0]  # the error's class, never its text


def test_the_worker_reports_an_outage_once_after_a_minute(monkeypatch):
    outage = worker._Outage()
    clock = [1000.0]
    monkeypatch.setattr(worker.time, "monotonic", lambda: clock[0])
    outage.failed(RuntimeError("down"))
    assert not outage.to_report()
    clock[0] += worker.OUTAGE_REPORT_S
    assert outage.to_report() and not outage.to_report()  # once per outage
    outage.over()
    outage.failed(RuntimeError("down again"))
    clock[0] += worker.OUTAGE_REPORT_S
    assert outage.to_report()
