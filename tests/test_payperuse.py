"""Pay-per-use products: usage in queryInstance (G2 and G1), the usage API, hours pushed late,
orderNotify on /license, and the merchant's notices (grouped, in the merchant's language).

The burst of 500 orders through a real gunicorn and worker to local robots and an SMTP server is
at the end.
"""

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from isvapp.background import notices, usage
from isvapp.extensions import db
from isvapp.koo.times import iso_utc
from isvapp.standins.fakemarket import create_fake_market
from isvapp.standins.serving import Running
from isvapp.storage.models import Alert, Event, Instance, Job, UsageRecord, UsageState, utcnow
from sqlalchemy import update

from .helpers import (
    AK,
    KEY,
    SK,
    answer_of,
    close_notice_windows,
    g1_order,
    last_log,
    live_alert_env,
    make_token,
    new_order,
    signed_result,
)

# An hour of usage two days ago: the marketplace takes usage up to 21 days old (USAGE_MAX_AGE_DAYS).
HOUR = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(days=2)


def made_before_hour(market, iid, **values):
    """The instance as made a day before HOUR (usage is recorded only inside an instance's life)."""
    with market.app.app_context():
        db.session.execute(
            update(Instance).where(Instance.instance_id == iid).values(created_at=HOUR - timedelta(days=1), **values)
        )
        db.session.commit()
    return iid


def created(market, order, mode, test_flag="0"):
    """A new instance with the charging mode its order details give it, made before HOUR."""
    iid = answer_of(market.g2(new_order(order=order, test_flag=test_flag)))["instanceId"]
    return made_before_hour(market, iid, charging_mode=mode)


def record(app, iid, value, begin=HOUR, package=None, sn=None):
    with app.app_context():
        return usage.add(iid, value, begin, begin + timedelta(hours=1), sn, package)


def query(market, *ids, path="/produce"):
    return answer_of(market.g2({"activity": "queryInstance", "instanceId": ",".join(ids), "testFlag": "0"}, path=path))[
        "info"
    ]


# --- queryInstance carries the usage ---------------------------------------------------------------


def test_a_pay_per_use_instance_answers_its_usage_recorded_so_far(app, market):
    iid = created(market, "PPU-1", "ON_DEMAND")
    [info] = query(market, iid)
    assert info["usageInfo"] == [{"usageValue": 0}]
    record(app, iid, "1.5")
    record(app, iid, "2.25", begin=HOUR + timedelta(hours=1))
    [info] = query(market, iid)
    assert info["usageInfo"] == [{"usageValue": 3.75}] and info["instanceId"] == iid


def test_a_package_answers_one_entry_per_pay_per_use_instance_drawn_from_it(app, market):
    """The page's example: a package of SMS and MMS returns two UsageInfo, one per instance."""
    package = created(market, "PKG-1", "ON_DEMAND_PKG")
    sms, mms = created(market, "PKG-SMS", "ON_DEMAND"), created(market, "PKG-MMS", "ON_DEMAND")
    assert query(market, package)[0]["usageInfo"] == []
    record(app, sms, "40", package=package)
    record(app, sms, "10", begin=HOUR + timedelta(hours=1), package=package)
    record(app, mms, "3", package=package)
    [info] = query(market, package)
    assert sorted(info["usageInfo"], key=lambda u: u["usageValue"]) == [
        {"relatedInstanceId": mms, "usageValue": 3.0},
        {"relatedInstanceId": sms, "usageValue": 50.0},
    ]


def test_refused_records_do_not_count_and_period_instances_carry_no_usage(app, market):
    iid, period = created(market, "PPU-2", "ON_DEMAND"), created(market, "PER-1", "PERIOD")
    sn = record(app, iid, "5")
    record(app, iid, "1", begin=HOUR + timedelta(hours=1))
    with app.app_context():
        db.session.execute(update(UsageRecord).where(UsageRecord.metering_sn == sn).values(state=UsageState.REJECTED))
        db.session.commit()
    by_id = {i["instanceId"]: i for i in query(market, iid, period)}
    assert by_id[iid]["usageInfo"] == [{"usageValue": 1.0}] and "usageInfo" not in by_id[period]


@pytest.mark.parametrize("app_config", [{"KOO_QUERY_USAGE_FIELD": ""}])
def test_the_usage_field_can_be_left_out(app, market):
    iid = created(market, "PPU-3", "ON_DEMAND")
    record(app, iid, "1")
    assert "usageInfo" not in query(market, iid)[0]


def test_g1_query_instance_answers_the_usage_too(app, market):
    iid = signed_result(market.g1(g1_order(order="G1PPU", chargingMode="ON_DEMAND", expireTime=None, testFlag="0")))[
        "instanceId"
    ]
    made_before_hour(market, iid)
    record(app, iid, "7.5")
    answer = signed_result(market.g1({"activity": "queryInstance", "instanceId": iid, "testFlag": "0"}))
    assert answer["info"][0]["usageInfo"] == [{"usageValue": 7.5}]


def test_license_2_query_answers_usage_and_order_notify_is_answered_on_license(market):
    body = {
        "activity": "orderNotify",
        "orderId": "CSLIC-N1",
        "orderLineId": "CSLIC-N1-000001",
        "testFlag": "1",
        "notifyTime": "20261202080000",
        "sellerId": "s-1",
    }
    assert answer_of(market.g2(body, path="/license"))["resultCode"] == "000000"
    [event] = market.rows(Event, Event.kind == "order_notified")
    assert event.payload["fields"] == {"notifyTime": "20261202080000", "sellerId": "s-1"}
    assert "undocumented orderNotify fields kept as sent: notifyTime, sellerId" in last_log(market).warnings
    [job] = market.rows(Job, Job.kind == "fetch_order")
    assert job.payload == {"order_id": "CSLIC-N1", "order_line_id": "CSLIC-N1-000001"}


# --- the usage API and the hour's deadline -----------------------------------------------------------


def test_the_usage_api_records_usage_with_a_token(app, admin_client, market):
    iid = created(market, "PPU-API", "ON_DEMAND")
    bearer = make_token(admin_client)
    api = app.test_client()
    body = {
        "instanceId": iid,
        "usageValue": 2.5,
        "beginTime": iso_utc(HOUR),
        "endTime": iso_utc(HOUR + timedelta(hours=1)),
        "meteringSn": "sn-api-1",
    }
    made = api.post("/api/v1/usage", json=body, headers={"Authorization": f"Bearer {bearer}"})
    assert made.status_code == 201 and made.get_json() == {
        "meteringSn": "sn-api-1",
        "dueAt": iso_utc(HOUR + timedelta(hours=1, minutes=15)),
    }
    again = api.post("/api/v1/usage", json=body, headers={"Authorization": f"Bearer {bearer}"})
    assert again.status_code == 201 and market.count(UsageRecord) == 1
    for bad, words in (
        ({**body, "usageValue": 0}, "must be > 0"),
        ({**body, "endTime": "soon"}, "endTime"),
        ({**body, "instanceId": "nope", "meteringSn": "sn-2"}, "does not exist"),
        ({**body, "meteringSn": "x" * 65}, "meteringSn"),
    ):
        refused = api.post("/api/v1/usage", json=bad, headers={"Authorization": f"Bearer {bearer}"})
        assert refused.status_code == 400 and words in refused.get_json()["message"], bad
    assert api.post("/api/v1/usage", json=body).status_code == 401
    assert market.count(UsageRecord) == 1


def test_the_due_time_is_a_quarter_past_the_next_hour():
    assert usage.due_at(datetime(2026, 11, 2, 14, 0)) == datetime(2026, 11, 2, 14, 15)  # 13:00-14:00
    assert usage.due_at(datetime(2026, 11, 2, 13, 25)) == datetime(2026, 11, 2, 14, 15)  # the page's 13:25
    assert usage.due_at(datetime(2026, 11, 2, 14, 0, 1)) == datetime(2026, 11, 2, 15, 15)


def test_an_hour_not_pushed_by_its_deadline_raises_one_alert(app, market):
    iid = created(market, "PPU-LATE", "ON_DEMAND")
    record(app, iid, "1")  # the hour from HOUR, due a quarter past the next
    record(app, iid, "1", begin=HOUR + timedelta(hours=1))  # due an hour later
    with app.app_context():
        assert usage.check_late(now=HOUR + timedelta(hours=1, minutes=10)) == 0
        assert usage.check_late(now=HOUR + timedelta(hours=1, minutes=20)) == 1
        assert usage.check_late(now=HOUR + timedelta(hours=1, minutes=30)) == 0  # counted once
        db.session.execute(
            update(UsageRecord)
            .where(UsageRecord.due_at == HOUR + timedelta(hours=2, minutes=15))
            .values(state=UsageState.PUSHED, pushed_at=HOUR + timedelta(hours=2, minutes=5))
        )
        db.session.commit()
        assert usage.check_late(now=HOUR + timedelta(hours=3)) == 0  # pushed in time
    [alert] = market.rows(Alert, Alert.kind == "usage_late")
    assert alert.count == 1 and "PPU-LATE" not in alert.subject and iid in alert.text


def test_a_record_pushed_after_its_deadline_is_late(app, market):
    iid = created(market, "PPU-LATE2", "ON_DEMAND")
    sn = record(app, iid, "1")
    with app.app_context():
        db.session.execute(
            update(UsageRecord)
            .where(UsageRecord.metering_sn == sn)
            .values(state=UsageState.PUSHED, pushed_at=HOUR + timedelta(hours=1, minutes=40))
        )
        db.session.commit()
        assert usage.check_late(now=HOUR + timedelta(hours=2)) == 1
        assert usage.last_push() == (HOUR + timedelta(hours=1, minutes=40), False, 0)  # over 24 h ago by now


# --- the merchant's notices -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "app_config", [{"ALERT_NOTICES": "new_order,release", "ALERT_LANGUAGE": "en", "DISPLAY_TIMEZONE": "UTC"}]
)
def test_new_real_orders_and_releases_are_one_held_notice_each(app, market):
    with app.app_context():
        assert notices.scan() == {}  # the first look starts from now
    iids = [created(market, f"NOTE-{n}", "PERIOD") for n in range(7)]
    created(market, "NOTE-TEST", "PERIOD", test_flag="1")  # debugging: not news
    answer_of(market.g2({"activity": "releaseInstance", "instanceId": iids[0], "testFlag": "0"}))
    now = utcnow()
    with app.app_context():
        assert notices.scan(now=now) == {"new_order": 7, "release": 1}
        assert notices.scan(now=now) == {}  # nothing new: nothing counted twice
    [order_alert] = market.rows(Alert, Alert.kind == "new_order")
    assert order_alert.count == 7
    [job] = [j for j in market.rows(Job, Job.kind == "alert") if j.payload["alert_id"] == order_alert.id]
    window_end = now.replace(minute=now.minute - now.minute % 10, second=0, microsecond=0) + timedelta(minutes=10)
    assert window_end <= job.run_after <= window_end + timedelta(seconds=2)  # held until the window closes
    with app.app_context():
        subject, text = notices.render(db.session.get(Alert, order_alert.id), app.extensions["isvapp"])
    assert subject == "7 new order(s)" and "NOTE-0, NOTE-1, NOTE-2, NOTE-3, NOTE-4 and 2 more" in text
    assert "password" not in text.lower()


@pytest.mark.parametrize(
    "app_config",
    [{"ALERT_NOTICES": "expiring,digest", "ALERT_LANGUAGE": "zh", "ALERT_EXPIRING_DAYS": 7, "ALERT_DIGEST_HOUR": 0}],
)
def test_expiring_instances_and_the_digest_once_a_day_in_chinese(app, market):
    soon, later = created(market, "EXP-1", "PERIOD"), created(market, "EXP-2", "PERIOD")
    now = utcnow()  # one moment for both looks: "once a day" must not depend on midnight falling between
    with app.app_context():
        db.session.execute(
            update(Instance).where(Instance.instance_id == soon).values(expire_time=now + timedelta(days=3))
        )
        db.session.execute(
            update(Instance).where(Instance.instance_id == later).values(expire_time=now + timedelta(days=30))
        )
        db.session.commit()
        found = notices.scan(now=now)
        assert found["expiring"] == 1 and found["digest"]["orders"] == 2
        assert notices.scan(now=now) == {"expiring": None, "digest": None}  # once a day
        expiring = db.session.execute(db.select(Alert).where(Alert.kind == "expiring")).scalar_one()
        subject, text = notices.render(expiring, app.extensions["isvapp"])
        digest = db.session.execute(db.select(Alert).where(Alert.kind == "digest")).scalar_one()
        digest_subject, _ = notices.render(digest, app.extensions["isvapp"])
    assert subject == "1 个实例将在 7 天内到期" and soon in text and later not in text
    assert digest_subject == "每日摘要：2 个新订单，0 个释放"


def test_notices_are_off_by_default(app, market):
    created(market, "QUIET-1", "PERIOD")
    with app.app_context():
        assert notices.scan() is None
    assert market.count(Alert) == 0


# --- 500 orders, one message per channel, through real processes -----------------------------------------


def notice_texts(robots):
    return [r["json"]["text"]["content"] for r in robots.received["wecom"] if "新订单" in r["json"]["text"]["content"]]


def test_a_burst_of_500_orders_is_one_notice_per_channel(tmp_path, robots, mailbox):
    import requests
    from isvapp.koo.signing import g2_signed_request
    from sqlalchemy import func, select

    from .live import LiveServer

    env = live_alert_env(
        robots, mailbox, ALERT_NOTICES="new_order", ALERT_NOTICE_GROUP_MIN=1, ALERT_LANGUAGE="zh", KOO_AK=AK, KOO_SK=SK
    )
    with (
        Running(create_fake_market(AK, SK, KEY)) as market_api,
        LiveServer(tmp_path, workers=2, env={**env, "ISVAPP_KOO_API_BASE_URL": market_api.url}) as server,
    ):
        server.flask("worker", "--until-idle")  # the notices' first look: from now on

        def order(n):
            raw, params = g2_signed_request(KEY, new_order(order=f"BURST{n:03d}"))
            return requests.post(
                server.url + "/produce",
                params=params,
                data=raw,
                timeout=30,
                headers={"Content-Type": "application/json"},
            ).json()["resultCode"]

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(order, range(500))) == {"000000"}
        engine = server.engine()
        with engine.connect() as conn:
            last = conn.execute(select(func.max(Event.id))).scalar()
        worker = server.flask_popen("worker", "--poll", "0.5")
        try:
            # all 500 counted in the window's one notice, which then goes without waiting for the
            # window to close
            assert close_notice_windows(engine, last)
            deadline = time.monotonic() + 240  # bounded
            while not (notice_texts(robots) and mailbox.messages) and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(2)  # anything more would have come by now
        finally:
            worker.terminate()
            worker.wait(15)
            engine.dispose()
    texts = [r["json"]["text"]["content"] for r in robots.received["wecom"]]
    assert len(texts) == 1 and "500 个新订单" in texts[0] and "BURST" in texts[0], texts
    assert len(robots.received["dingtalk"]) == 1 and len(robots.received["feishu"]) == 1
    [(_, _, message)] = mailbox.messages
    assert "500 个新订单" in message["Subject"]
    assert json.dumps(texts).count("BURST") == 5  # a sample of orders, not 500 lines


@pytest.mark.live
def test_through_real_processes_a_late_hour_alerts_and_a_refused_sdr_is_kept_with_its_code(tmp_path):
    """gunicorn takes the usage (the API), the worker pushes it to the fake marketplace: an hour
    recorded after its deadline is marked late and alerted, and the SDR the marketplace refuses
    keeps its per-record code; the other is pushed."""
    import requests
    from isvapp.koo.signing import g2_signed_request
    from sqlalchemy import select

    from .live import LiveServer, stop_process, wait_for

    with Running(create_fake_market(AK, SK, KEY)) as market_api:
        env = {
            "ISVAPP_KOO_ACCESS_KEY": KEY,
            "ISVAPP_KOO_AK": AK,
            "ISVAPP_KOO_SK": SK,
            "ISVAPP_KOO_API_BASE_URL": market_api.url,
            "ISVAPP_JOB_RETRY_BASE_S": "0",
        }
        with LiveServer(tmp_path, workers=2, env=env) as server:
            raw, params = g2_signed_request(KEY, new_order(order="LIVE-PPU"))
            iid = requests.post(
                server.url + "/produce",
                params=params,
                data=raw,
                timeout=10,
                headers={"Content-Type": "application/json"},
            ).json()["instanceId"]
            engine = server.engine()
            end = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
            with engine.begin() as conn:  # its charging mode, as the order query would have set it, made before
                conn.execute(
                    update(Instance)
                    .where(Instance.instance_id == iid)
                    .values(charging_mode="ON_DEMAND", created_at=end - timedelta(hours=3))
                )
            for sn in ("live-late", "live-refused"):
                server.flask(
                    "usage",
                    "add",
                    iid,
                    "3",
                    "--begin",
                    f"{end - timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ}",
                    "--end",
                    f"{end:%Y-%m-%dT%H:%M:%SZ}",
                    "--sn",
                    sn,
                )
            market_api.app.extensions["fake_market"].usage["live-refused"] = {}  # it has one by that id
            worker = server.flask_popen("worker", "--poll", "0.3")
            try:

                def read(statement):
                    with engine.connect() as conn:
                        return conn.execute(statement).all()

                def settled():
                    found = read(
                        select(UsageRecord.metering_sn, UsageRecord.state, UsageRecord.error_code, UsageRecord.late)
                    )
                    return found if all(r.state in ("pushed", "rejected") and r.late for r in found) else None

                rows = wait_for(settled, "the push and the late marks")
                alert = wait_for(
                    lambda: read(select(Alert.subject, Alert.count).where(Alert.kind == "usage_late")),
                    "the usage_late alert",
                )
            finally:
                stop_process(worker)
                engine.dispose()
    assert sorted((r.metering_sn, r.state, r.error_code) for r in rows) == [
        ("live-late", "pushed", None),
        ("live-refused", "rejected", "005"),
    ]
    assert alert == [("2 usage record(s) missed their hour's deadline", 1)]
    assert "live-late" in market_api.app.extensions["fake_market"].usage
