"""GET /metrics: what is counted where it happens, who may read the page, and the counts of a real
gunicorn's two workers and a real background worker added up, read with prometheus-client's own
parser."""

import json
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import isvapp.settings
import pytest
import requests
from isvapp import metrics
from isvapp.background import alerts, jobs, usage, worker
from isvapp.extensions import db
from isvapp.koo.signing import g2_signed_request
from isvapp.standins.fakemarket import create_fake_market
from isvapp.standins.serving import Running
from isvapp.storage.models import Instance, Job, JobState, utcnow
from isvapp.storage.transactions import write_transaction
from sqlalchemy import func, select, update
from werkzeug.wrappers import Request, Response

from .helpers import KEY, metric, parse_metrics, scrape, serving, tagged_order
from .live import LiveServer

TOKEN = "metrics-token-0123456789abcdef"
ELSEWHERE = {"REMOTE_ADDR": "203.0.113.9"}


def change(after, before, name, **labels):
    return metric(after, name, **labels) - metric(before, name, **labels)


def run_jobs(app):
    with app.app_context():
        return worker.work(until_idle=True, max_jobs=100)


# --- who may read it ------------------------------------------------------------------------------


def test_another_host_is_refused_while_no_token_is_set(client):
    response = client.get("/metrics", environ_base=ELSEWHERE)
    assert response.status_code == 403 and b"METRICS_TOKEN" in response.data
    assert client.get("/metrics").status_code == 200  # this host needs none


@pytest.mark.parametrize("app_config", [{"METRICS_TOKEN": TOKEN}])
def test_another_host_needs_the_token(client):
    assert client.get("/metrics", environ_base=ELSEWHERE).status_code == 401
    wrong = client.get("/metrics", environ_base=ELSEWHERE, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
    right = client.get("/metrics", environ_base=ELSEWHERE, headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 200 and right.headers["Content-Type"].startswith("text/plain")
    # through a proxy on this host (nginx): not this host's own request
    assert client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 401


@pytest.mark.parametrize("app_config", [{"PROXY_FIX_HOPS": 1}])
def test_behind_a_trusted_proxy_the_clients_address_decides(client):
    assert client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 403


# --- what is counted ------------------------------------------------------------------------------


def test_callbacks_are_counted_by_interface_activity_and_result_code(client, market):
    before = scrape(client)
    made = [json.loads(market.g2(tagged_order(f"A{n}")).data)["instanceId"] for n in range(3)]
    market.g2(tagged_order("W"), key="not-the-key")
    market.g2({"activity": "queryInstance", "instanceId": made[0]})
    market.g2({**tagged_order("L"), "testFlag": "0"}, path="/license")
    market.kit("tenantSync", {"instanceId": "never-created", "tenantId": "t-x", "flag": 0, "testFlag": 0})
    after = scrape(client)
    counted = {
        ("produce", "newInstance", "000000"): 3,
        ("produce", "unknown", "000001"): 1,
        ("produce", "queryInstance", "000000"): 1,
        ("license", "newInstance", "000000"): 1,
        ("kit", "tenantSync", "000000"): 1,
    }
    for (interface, activity, code), count in counted.items():
        labels = dict(interface=interface, activity=activity, result_code=code)
        assert change(after, before, "isvapp_callbacks_total", **labels) == count, labels
    for interface, count in (("produce", 5), ("license", 1), ("kit", 1)):
        assert change(after, before, "isvapp_callback_duration_seconds_count", interface=interface) == count
        assert change(after, before, "isvapp_callback_duration_seconds_bucket", interface=interface, le="10.0") == count
    assert metrics.ANSWER_BUCKETS[9] == 5  # a bucket's edge is the marketplace's budget


def job_table(app):
    """{(kind, state): (jobs, attempts)} as the database has it."""
    with app.app_context():
        rows = db.session.execute(
            select(Job.kind, Job.state, func.count(), func.sum(Job.attempts)).group_by(Job.kind, Job.state)
        ).all()
        db.session.remove()
    return {(kind, state): (count, attempts or 0) for kind, state, count, attempts in rows}


def test_jobs_waiting_are_read_from_the_database_and_their_runs_counted(app, client, market):
    market.g2(tagged_order("J"))  # the order's jobs (order details, provisioning)
    with app.app_context(), write_transaction():
        jobs.enqueue("test_fails", "k1")
        db.session.execute(update(Job).values(run_after=utcnow() - timedelta(seconds=90)))
    table = job_table(app)
    before = scrape(client)
    assert len(table) >= 2 and metric(before, "isvapp_database_up") == 1
    for (kind, state), (count, _) in table.items():
        assert metric(before, "isvapp_jobs", kind=kind, state=state) == count
    assert 90 <= metric(before, "isvapp_jobs_oldest_waiting_seconds") < 3600

    def fails(job):
        raise RuntimeError("down")

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(app.extensions["isvapp_jobs"].handlers, "test_fails", fails)
        run_jobs(app)
    after, table = scrape(client), job_table(app)
    assert metric(after, "isvapp_jobs_oldest_waiting_seconds") == 0  # what failed waits for its retry
    assert metric(after, "isvapp_jobs", kind="test_fails", state="queued") == 1
    # every attempt the database holds is one run counted: done, retry (failed, queued again) or dead
    failed = 0
    for kind in {kind for kind, _ in table}:
        done = table.get((kind, JobState.DONE), (0, 0))[0]
        dead = table.get((kind, JobState.DEAD), (0, 0))[0]
        attempts = sum(attempts for (k, _), (_, attempts) in table.items() if k == kind)
        runs = {
            o: change(after, before, "isvapp_job_runs_total", kind=kind, outcome=o) for o in ("done", "retry", "dead")
        }
        assert runs == {"done": done, "retry": attempts - done - dead, "dead": dead}, kind
        failed += attempts - done
    assert failed >= 1 and change(after, before, "isvapp_unexpected_errors_total", source="job") == failed


class Robot:
    """A WeCom group robot on loopback: takes every message."""

    def __init__(self):
        self.received = []

    def __call__(self, environ, start_response):
        self.received.append(json.loads(Request(environ).get_data()))
        return Response('{"errcode":0,"errmsg":"ok"}', content_type="application/json")(environ, start_response)


@pytest.fixture
def robot():
    robot = Robot()
    with serving(robot) as base:
        robot.url = f"{base}/cgi-bin/webhook/send?key=k"
        yield robot


@pytest.mark.live
def test_alerts_raised_and_their_deliveries_are_counted(app, client, robot):
    app.config.update(ALERT_WECOM_URL=robot.url, ALERT_DINGTALK_URL="http://127.0.0.1:9/robot/send", JOB_RETRY_BASE_S=0)
    isvapp.settings.init_app(app)  # read once per app: read them again
    before = scrape(client)
    with app.app_context():
        for _ in range(3):  # one alert, counted three times
            alerts.raise_alert_alone("disk_low", "Disk space is low", "1% free")
    run_jobs(app)
    after = scrape(client)
    assert len(robot.received) == 1
    assert change(after, before, "isvapp_alerts_raised_total", kind="disk_low") == 3
    assert change(after, before, "isvapp_alert_deliveries_total", channel="wecom", outcome="sent") == 1
    assert change(after, before, "isvapp_alert_deliveries_total", channel="dingtalk", outcome="failed") >= 1


@pytest.fixture
def market_api():
    with Running(create_fake_market("ak", "sk", KEY)) as running:
        yield running


def test_usage_pushed_is_counted_on_time_late_and_rejected(app, client, market, market_api):
    app.config.update(KOO_API_BASE_URL=market_api.url, KOO_AK="ak", KOO_SK="sk")
    isvapp.settings.init_app(app)  # read once per app: read them again
    market.g2({**tagged_order("U"), "businessId": "meter-1"})
    now = datetime.now(UTC).replace(microsecond=0)
    with app.app_context():  # pay-per-use (the order details say so) and made before its oldest usage
        db.session.execute(
            update(Instance)
            .where(Instance.instance_id == "meter-1")
            .values(charging_mode="ON_DEMAND", created_at=(now - timedelta(days=3)).replace(tzinfo=None))
        )
        db.session.commit()
    market_api.app.extensions["fake_market"].usage["dup-sn"] = {}  # the marketplace has it: refused
    with app.app_context():
        usage.add("meter-1", "1", now - timedelta(minutes=30), now, metering_sn="on-time")
        usage.add("meter-1", "1", now - timedelta(days=2, hours=1), now - timedelta(days=2), metering_sn="late")
        usage.add("meter-1", "1", now - timedelta(minutes=30), now, metering_sn="dup-sn")
    before = scrape(client)
    run_jobs(app)
    after = scrape(client)
    for outcome in ("on_time", "late", "rejected"):
        assert change(after, before, "isvapp_usage_pushed_total", outcome=outcome) == 1, outcome


def test_relay_calls_are_counted_by_call_and_outcome(client):
    before = scrape(client)
    client.post("/relay/v1/activate", data="not json", content_type="application/json")
    client.post("/relay/v1/verify", json={"license": "PL1"})
    after = scrape(client)
    assert change(after, before, "isvapp_relay_calls_total", call="activate", outcome="invalid_request") == 1
    assert (
        sum(
            change(after, before, "isvapp_relay_calls_total", call="verify", outcome=o)
            for o in ("invalid_request", "unauthorized", "unknown_license", "invalid_token")
        )
        == 1
    )


def test_a_buyer_login_refused_is_counted_with_its_reason(client):
    before = scrape(client)
    assert client.get("/login/nobody").status_code == 404
    after = scrape(client)
    assert change(after, before, "isvapp_buyer_logins_total", outcome="unknown_tenant") == 1


@pytest.mark.parametrize("app_config", [{"METRICS_ENABLED": False}])
def test_with_metrics_off_nothing_is_counted(app, client, market):
    try:
        before = scrape(client)
        market.g2(tagged_order("off"))
        assert (
            change(
                scrape(client),
                before,
                "isvapp_callbacks_total",
                interface="produce",
                activity="newInstance",
                result_code="000000",
            )
            == 0
        )
    finally:
        metrics.enable(True)  # one switch per process: the next test's app sets it again anyway


# --- across processes: a real gunicorn with two workers, and a real background worker --------------


def signed_post(url, body, key=KEY, path="/produce"):
    raw, query = g2_signed_request(key, body)
    answer = requests.post(url + path, params=query, data=raw, headers={"Content-Type": "application/json"}, timeout=30)
    return json.loads(answer.content)["resultCode"]


@pytest.mark.live
def test_a_real_servers_counts_add_up_across_its_workers_and_the_background_worker(tmp_path):
    batch, refused, licenses = 40, 6, 4
    server = LiveServer(
        tmp_path / "instance", workers=2, env={"ISVAPP_KOO_ACCESS_KEY": KEY, "ISVAPP_METRICS_TOKEN": TOKEN}
    )
    with server, ThreadPoolExecutor(8) as pool:
        sent = [pool.submit(signed_post, server.url, tagged_order(f"R{n}"), "not-the-key") for n in range(refused)]
        sent += [
            pool.submit(signed_post, server.url, {**tagged_order(f"C{n}"), "testFlag": "0"}, KEY, "/license")
            for n in range(licenses)
        ]
        folder = server.instance_path / "metrics"

        def counting():
            return {metrics._pid_of(name) for name in os.listdir(folder) if name.startswith("counter_")}

        orders = 0
        # Each process writes its own file. Which worker takes a connection is the kernel's choice,
        # so orders are sent in batches (at most five) until both gunicorn workers have counted.
        for _ in range(5):
            sent += [pool.submit(signed_post, server.url, tagged_order(f"L{orders + n}")) for n in range(batch)]
            orders += batch
            for future in sent:
                future.result()  # answered, so counted
            if len(counting()) == 2:
                break
        codes = [future.result() for future in sent]
        assert codes.count("000000") == orders + licenses and codes.count("000001") == refused
        assert len(counting()) == 2

        page = requests.get(server.url + "/metrics", timeout=30)
        assert page.status_code == 200
        samples = parse_metrics(page.text)
        by_code = {
            ("produce", "newInstance", "000000"): orders,
            ("produce", "unknown", "000001"): refused,
            ("license", "newInstance", "000000"): licenses,
        }
        counted = {
            (dict(labels)["interface"], dict(labels)["activity"], dict(labels)["result_code"]): value
            for (name, labels), value in samples.items()
            if name == "isvapp_callbacks_total"
        }
        assert counted == by_code
        for interface, count in (("produce", orders + refused), ("license", licenses)):
            assert metric(samples, "isvapp_callback_duration_seconds_count", interface=interface) == count
            assert metric(samples, "isvapp_callback_duration_seconds_bucket", interface=interface, le="+Inf") == count

        engine = server.engine()
        try:

            def table():
                with engine.connect() as connection:
                    rows = connection.execute(
                        select(Job.kind, Job.state, func.count(), func.sum(Job.attempts)).group_by(Job.kind, Job.state)
                    ).all()
                return {(kind, state): (count, attempts) for kind, state, count, attempts in rows}

            before = table()
            for (kind, state), (count, _) in before.items():
                assert metric(samples, "isvapp_jobs", kind=kind, state=state) == count
            server.flask("worker", "--until-idle")  # its counts go to the same folder
            after = table()
        finally:
            engine.dispose()
        samples = parse_metrics(requests.get(server.url + "/metrics", timeout=30).text)
        for kind in {kind for kind, _ in after}:
            done = after.get((kind, JobState.DONE), (0, 0))[0]
            attempts = sum(a for (k, _), (_, a) in after.items() if k == kind)
            assert metric(samples, "isvapp_job_runs_total", kind=kind, outcome="done") == done, kind
            ran = sum(metric(samples, "isvapp_job_runs_total", kind=kind, outcome=o) for o in ("done", "retry", "dead"))
            assert ran == attempts, kind
        assert (
            metric(samples, "isvapp_callbacks_total", interface="produce", activity="newInstance", result_code="000000")
            == orders
        )

        # another host, or anyone through a proxy here: only with the token
        proxied = {"X-Forwarded-For": "203.0.113.9"}
        assert requests.get(server.url + "/metrics", headers=proxied, timeout=30).status_code == 401
        with_token = {**proxied, "Authorization": f"Bearer {TOKEN}"}
        assert requests.get(server.url + "/metrics", headers=with_token, timeout=30).status_code == 200


def test_a_count_that_fails_changes_no_answer(market, monkeypatch):
    made = metrics._metrics()

    def broken(*values):
        raise OSError("the metrics folder is gone")

    monkeypatch.setattr(made, "child", broken)
    answer = market.g2(tagged_order("F"))
    assert answer.status_code == 200 and json.loads(answer.data)["resultCode"] == "000000"
