"""Background jobs: order details from a (fake) marketplace, hooks, retries, dead jobs, workers."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, timedelta

import isvapp.settings
import pytest
from isvapp.background import jobs, provisioning, registry, usage, worker
from isvapp.extensions import db
from isvapp.standins.fakemarket import create_fake_market
from isvapp.standins.serving import Running
from isvapp.storage.models import DetailsState, Event, Instance, Job, JobState, UsageRecord, UsageState, utcnow
from sqlalchemy import update
from werkzeug.wrappers import Request, Response

from .helpers import AK, KEY, RECORD_FILE, SK, hook_calls, new_order, run_until_idle
from .live import ROOT
from .tiers import live_fixture


@live_fixture
def market_api():
    with Running(create_fake_market(AK, SK, KEY)) as running:
        yield running


@pytest.fixture
def hook_log(tmp_path, monkeypatch):
    path = tmp_path / "hooks.jsonl"
    monkeypatch.setenv(RECORD_FILE, str(path))
    return path


@pytest.fixture
def app_config(market_api, hook_log):
    return {
        "KOO_API_BASE_URL": market_api.url,
        "KOO_AK": AK,
        "KOO_SK": SK,
        "JOB_RETRY_BASE_S": 0,
        "PROVISIONER": "tests.helpers:Recorder",
    }


def test_order_details_are_filled_after_new_instance(app, market, hook_log):
    body = new_order(order="MOCKPERIODYEARNEW", line="MOCKPERIODYEARNEW-000001", business="inst-1")
    assert json.loads(market.g2(body).data)["resultCode"] == "000000"
    assert market.rows(Instance)[0].details_state == DetailsState.PENDING
    run_until_idle(app)
    [instance] = market.rows(Instance)
    assert (
        instance.details_state,
        instance.period_type,
        instance.period_number,
        instance.charging_mode,
        instance.customer_name,
        instance.sku_code,
    ) == (DetailsState.FETCHED, "year", 1, "PERIOD", "Fake Customer", "fake-sku")
    assert instance.expire_time is not None and instance.extra["order"]["orderId"] == "MOCKPERIODYEARNEW"
    kinds = [c["kind"] for c in hook_calls(hook_log) if "kind" in c]
    assert kinds == ["created", "details_fetched"]
    assert market.count(Job, Job.state != JobState.DONE) == 0


def test_marketplace_down_then_back(app, market, market_api):
    market_api.app.config["FAKE_MARKET_FAIL_NEXT"] = 3
    started = time.perf_counter()
    assert json.loads(market.g2(new_order(business="inst-2")).data)["resultCode"] == "000000"
    assert time.perf_counter() - started < 1.0  # the answer never waits for the marketplace
    run_until_idle(app)
    [job] = market.rows(Job, Job.kind == "fetch_order")
    assert (job.state, job.attempts) == (JobState.DONE, 4)
    assert market.rows(Instance)[0].details_state == DetailsState.FETCHED


def test_slow_marketplace_times_out_within_three_seconds(app, market, market_api):
    market_api.app.config["FAKE_MARKET_DELAY_S"] = 3.5
    market.g2(new_order(business="inst-3"))
    with app.app_context():
        ran = [worker.run_one("w1").kind for _ in range(2)]  # the "created" hook, then the order query
    assert ran == ["provision", "fetch_order"]
    [job] = market.rows(Job, Job.kind == "fetch_order")
    assert job.state == JobState.QUEUED and "network" in job.last_error
    market_api.app.config["FAKE_MARKET_DELAY_S"] = 0
    run_until_idle(app)
    assert market.rows(Instance)[0].details_state == DetailsState.FETCHED


@pytest.mark.live
@pytest.mark.parametrize(
    "app_config",
    [
        {
            "KOO_API_BASE_URL": "http://127.0.0.1:9",
            "KOO_AK": AK,
            "KOO_SK": SK,
            "JOB_RETRY_BASE_S": 0,
            "JOB_MAX_ATTEMPTS": 2,
        }
    ],
)
def test_dead_job_is_kept_with_its_error_and_can_be_retried(app, market, runner, monkeypatch, caplog):
    market.g2(new_order(business="inst-4"))
    with caplog.at_level("INFO", logger="isvapp.jobs"):
        run_until_idle(app)
    [job] = market.rows(Job, Job.kind == "fetch_order")
    assert (job.state, job.attempts) == (JobState.DEAD, 2) and "network" in job.last_error
    assert "Traceback (most recent call last)" in job.last_error  # kept in full on the job
    # An unreachable marketplace is no fault in isvapp's code: its log lines name it in one line.
    failed = [r for r in caplog.records if "failed on attempt" in r.getMessage()]
    assert len(failed) == 2 and all(r.exc_info is None and "network" in r.getMessage() for r in failed)
    assert market.rows(Instance)[0].details_state == DetailsState.FAILED
    assert market.count(Event, Event.kind == "details_failed") == 1
    assert "dead" in runner.invoke(args=["jobs", "list", "--state", "dead"]).output
    with Running(create_fake_market(AK, SK, KEY)) as market_api:
        app.config["KOO_API_BASE_URL"] = market_api.url
        isvapp.settings.init_app(app)  # read once per app: read them again
        assert "1 job(s)" in runner.invoke(args=["jobs", "retry", str(job.id)]).output
        run_until_idle(app)
    assert market.rows(Job, Job.kind == "fetch_order")[0].state == JobState.DONE
    assert market.rows(Instance)[0].details_state == DetailsState.FETCHED


def test_a_fault_in_a_handlers_code_is_logged_with_its_traceback(app, market, monkeypatch, caplog):
    def broken(job):
        return {}["no such key"]

    monkeypatch.setitem(app.extensions[registry.KEY].handlers, "fetch_order", broken)
    market.g2(new_order(business="inst-5"))
    with caplog.at_level("INFO", logger="isvapp.jobs"):
        run_until_idle(app)
    failed = [r for r in caplog.records if "failed on attempt" in r.getMessage()]
    assert failed and all(r.exc_info and r.exc_info[0] is KeyError for r in failed)


@pytest.mark.parametrize("app_config", [{"JOB_PERIODIC_S": 0.2}])
def test_the_periodic_tasks_run_as_often_as_job_periodic_s_says(app, monkeypatch):
    def slow(job):
        time.sleep(0.25)

    monkeypatch.setitem(app.extensions[registry.KEY].handlers, "slow", slow)
    with app.app_context():
        for n in range(3):
            jobs.enqueue("slow", f"s{n}")
        db.session.commit()
        ticks = []
        worker.work(poll_s=0, until_idle=True, tick=lambda: ticks.append(time.monotonic()))
    assert len(ticks) >= 3  # at the start, then every 0.2 s between jobs of 0.25 s (30 s: once)


def test_backoff_grows_with_jitter_and_is_capped():
    import random

    rng = random.Random(1)
    delays = [jobs.backoff_s(n, 5, 3600, rng) for n in range(1, 14)]
    assert 2.5 <= delays[0] <= 5 and 40 <= delays[4] <= 80 and all(d <= 3600 for d in delays)
    assert len({round(jobs.backoff_s(3, 5, 3600, rng), 6) for _ in range(20)}) > 1


# --- worker processes -----------------------------------------------------------------------------


def worker_env(app, **extra):
    env = {
        **os.environ,
        "ISVAPP_INSTANCE_PATH": app.instance_path,
        "ISVAPP_SECRET_KEY": "test-secret",
        "ISVAPP_KOO_ACCESS_KEY": KEY,
        "ISVAPP_PROVISIONER": "tests.helpers:Recorder",
        "ISVAPP_KOO_API_BASE_URL": app.config["KOO_API_BASE_URL"],
        "ISVAPP_KOO_AK": AK,
        "ISVAPP_KOO_SK": SK,
        "ISVAPP_JOB_RETRY_BASE_S": "0",
        "PYTHONPATH": str(ROOT),
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_worker(app, *args, **env):
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "isvapp", "worker", "--poll", "0.2", *args],
        cwd=ROOT,
        env=worker_env(app, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_a_worker_killed_mid_hook_leaves_the_job_to_run_again_with_the_same_event(app, market, hook_log):
    market.g2(new_order(business="inst-5"))
    worker = start_worker(app, ISVAPP_TEST_HOOK_SLEEP=30, ISVAPP_JOB_LEASE_S=2)
    try:
        deadline = time.monotonic() + 20
        while not any(c.get("kind") == "created" for c in hook_calls(hook_log)) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    [first] = [c for c in hook_calls(hook_log) if c.get("kind") == "created"]
    time.sleep(2.2)  # the dead worker's lease runs out
    run_until_idle(app)
    created = [c["event"] for c in hook_calls(hook_log) if c.get("kind") == "created"]
    assert created == [first["event"], first["event"]]
    assert market.count(Job, Job.state != JobState.DONE) == 0


def test_several_workers_never_run_one_job_twice(app, market, hook_log):
    for i in range(24):
        market.g2(new_order(order=f"ORD{i}", business=f"inst-w{i}"))
    workers = [start_worker(app, "--until-idle", ISVAPP_TEST_HOOK_SLEEP=0.05) for _ in range(3)]
    for w in workers:
        assert w.wait(120) == 0, w.stderr.read().decode()[-2000:]
    run_until_idle(app)  # anything a worker left when it went idle early
    starts = [c for c in hook_calls(hook_log) if "kind" in c]
    assert len(starts) == len({c["event"] for c in starts}) == market.count(Event)
    assert len({c["pid"] for c in starts}) >= 2  # the work was really shared
    assert market.count(Job, Job.state != JobState.DONE) == 0


# --- webhook provisioner --------------------------------------------------------------------------


class Receiver:
    """The merchant's app: verifies each delivery as README shows; the first one fails (HTTP 500)."""

    def __init__(self, secret):
        self.secret, self.received, self.refused = secret, [], 0

    def __call__(self, environ, start_response):
        request = Request(environ)
        body = request.get_data()
        headers = {k.lower(): v for k, v in request.headers.items()}
        if not provisioning.verify_webhook(self.secret, headers, body):
            self.refused += 1
            return Response("bad signature", 401)(environ, start_response)
        if not self.received:
            self.received.append(None)
            return Response("try later", 500)(environ, start_response)
        self.received.append(json.loads(body))
        return Response("ok", 200)(environ, start_response)


@pytest.mark.parametrize("secret", ["whsec_" + "c2VjcmV0LWJ5dGVzLWZvci10ZXN0cw==", "plain-secret"])
def test_webhook_provisioner_delivers_signed_events_and_retries(app, market, secret):
    receiver = Receiver(secret)
    with Running(receiver) as running:
        app.config.update(
            PROVISIONER="isvapp.provisioning:WebhookProvisioner",
            WEBHOOK_URL=f"{running.url}/hooks",
            WEBHOOK_SECRET=secret,
        )
        isvapp.settings.init_app(app)  # read once per app: read them again
        market.g2(new_order(business="inst-6"))
        run_until_idle(app)
    deliveries = [d for d in receiver.received if d]
    assert [d["type"] for d in deliveries] == ["created", "details_fetched"] and receiver.refused == 0
    created = deliveries[0]["data"]
    assert created["instance"]["instance_id"] == "inst-6" and len(created["instance"]["admin_password"]) >= 12
    assert deliveries[0]["id"] == created["event_id"]
    forged = {"webhook-id": "x", "webhook-timestamp": str(int(time.time())), "webhook-signature": "v1,AAAA"}
    assert not provisioning.verify_webhook(secret, forged, b"{}")


# --- usage push -----------------------------------------------------------------------------------


def test_usage_is_pushed_in_batches_once_and_rejections_are_kept(app, market, market_api, runner):
    market.g2(new_order(business="meter-1"))
    begin = utcnow().replace(minute=0, second=0, microsecond=0, tzinfo=UTC) - timedelta(days=2)
    end = begin + timedelta(hours=1)
    with app.app_context():  # pay-per-use, as its order details say, and made before the usage
        db.session.execute(
            update(Instance)
            .where(Instance.instance_id == "meter-1")
            .values(charging_mode="ON_DEMAND", created_at=utcnow() - timedelta(days=3))
        )
        db.session.commit()
    market_api.app.extensions["fake_market"].usage["dup-sn"] = {}
    with app.app_context():
        for i in range(1100):
            usage.add("meter-1", "1.5", begin, end, metering_sn=f"sn-{i}")
        assert usage.add("meter-1", "1.5", begin, end, metering_sn="sn-0") == "sn-0"
        usage.add("meter-1", "2", begin, end, metering_sn="dup-sn")
        with pytest.raises(ValueError, match="4 decimals"):
            usage.add("meter-1", "0.00001", begin, end)
        with pytest.raises(ValueError, match="does not exist"):
            usage.add("nope", "1", begin, end)
    result = runner.invoke(
        args=[
            "usage",
            "add",
            "meter-1",
            "3",
            "--begin",
            f"{begin:%Y-%m-%dT%H:%M:%SZ}",
            "--end",
            f"{end:%Y-%m-%dT%H:%M:%SZ}",
            "--sn",
            "cli-sn",
        ]
    )
    assert result.exit_code == 0, result.output
    run_until_idle(app)
    calls = [c for c in market_api.app.extensions["fake_market"].calls if c[1].endswith("usage-data")]
    assert len(calls) == 12  # 1102 records: 11 batches of 100 (KOO_USAGE_PUSH_BATCH) and one of 2
    pushed = market_api.app.extensions["fake_market"].usage
    assert len(pushed) == 1102 and pushed["sn-0"]["usage_value"] == "1.5"
    assert pushed["sn-0"]["begin_time"] == f"{begin:%Y%m%dT%H%M%SZ}"
    assert market.count(UsageRecord, UsageRecord.state == UsageState.PUSHED) == 1101
    [rejected] = market.rows(UsageRecord, UsageRecord.state == UsageState.REJECTED)
    assert (rejected.metering_sn, rejected.error_code) == ("dup-sn", "005")
    assert market.count(Job, Job.kind == "usage_push", Job.attempts > 1) == 0  # no batch refused (MKT.9003)
    run_until_idle(app)
    assert len([c for c in market_api.app.extensions["fake_market"].calls if c[1].endswith("usage-data")]) == 12


def test_fake_market_refuses_bad_signatures(app, market_api):
    from isvapp.market import openapi

    settings = isvapp.settings.load({**app.config, "KOO_SK": "wrong"})
    with pytest.raises(openapi.MarketError, match="MKT.0154"):
        openapi.query_order(settings, "MOCKONETIMENEW")
    good = isvapp.settings.load(app.config)
    assert openapi.query_order(good, "MOCKONETIMENEW")["orderLine"][0]["chargingMode"] == "ONE_TIME"
