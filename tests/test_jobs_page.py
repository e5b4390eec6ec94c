"""The jobs page: dead jobs made by the worker itself (a provisioning webhook to a closed port, one
attempt), found by state and kind, read in full, retried or given up behind the login and CSRF."""

import json
import re

import pytest
from isvapp import settings
from isvapp.background import jobs, worker
from isvapp.extensions import db
from isvapp.market import openapi
from isvapp.standins.serving import Running
from isvapp.storage.models import Instance, Job, JobState, utcnow
from werkzeug.wrappers import Request, Response

from .helpers import new_order, token
from .live import free_port

HOOK_PORT = free_port()  # nothing listens here until a test opens its receiver
SECRET = "whsec_dGVzdC1zZWNyZXQtMDEyMzQ1Njc4OQ=="


@pytest.fixture
def app_config():
    return {
        "JOB_MAX_ATTEMPTS": 1,
        "PROVISIONER": "isvapp.provisioning:WebhookProvisioner",
        "WEBHOOK_URL": f"http://127.0.0.1:{HOOK_PORT}/hook",
        "WEBHOOK_SECRET": SECRET,
    }


class Hooks:
    """The merchant's webhook receiver: records each event and answers 204."""

    def __init__(self):
        self.events = []

    def __call__(self, environ, start_response):
        self.events.append(json.loads(Request(environ).get_data()))
        return Response(status=204)(environ, start_response)


def run_worker(app):
    with app.app_context():
        return worker.work(until_idle=True, max_jobs=50)


def dead_order(app, market, order="DEADJOB1"):
    """A real order whose provisioning hook cannot be delivered (nothing listens) and whose order
    details cannot be fetched (no AK/SK): with one attempt each, its jobs die in the worker (the
    "created" event's hook, the fetch, and the hook of the "details_failed" event the dead fetch
    emits). Returns the "created" hook's job."""
    known = {j.id for j in market.rows(Job)}
    assert json.loads(market.g2(new_order(order=order)).data)["resultCode"] == "000000"
    run_worker(app)
    made = [j for j in market.rows(Job, Job.state == JobState.DEAD) if j.id not in known]
    assert sorted(j.kind for j in made) == ["fetch_order", "provision", "provision"], made
    return min((j for j in made if j.kind == "provision"), key=lambda j: j.id)


def post(client, url, **form):
    page = client.get(url).get_data(as_text=True)
    return client.post(url, data={"csrf_token": token(page), **form})


def test_dead_jobs_by_state_and_kind_with_counts_their_errors_and_the_overview_linking_them(app, market, admin_client):
    provision = dead_order(app, market)
    [fetch] = market.rows(Job, Job.kind == "fetch_order")
    assert fetch.state == JobState.DEAD
    overview = admin_client.get("/admin/").get_data(as_text=True)
    card = re.search(r'id="dead-jobs">(.*?)</div>', overview, re.S).group(1)
    assert '<a href="/admin/jobs?state=dead">3</a>' in card and "isvapp jobs" not in overview

    listing = admin_client.get("/admin/jobs?state=dead").get_data(as_text=True)
    dead = market.rows(Job, Job.state == JobState.DEAD)
    assert sorted(re.findall(r'data-job="(\d+)"', listing)) == sorted(str(j.id) for j in dead)
    assert re.search(r'data-count="dead-provision">2<', listing) and re.search(
        r'data-count="dead-fetch_order">1<', listing
    )
    assert re.search(r'data-state="dead">.*?>3</a>', listing, re.S)
    assert "Connection refused" in listing and "KOO_AK and KOO_SK" in listing  # each error's first line
    assert 'name="action" value="retry_dead"' in listing
    only = admin_client.get("/admin/jobs?state=dead&kind=fetch_order").get_data(as_text=True)
    assert re.findall(r'data-job="(\d+)"', only) == [str(fetch.id)]
    by_key = admin_client.get(f"/admin/jobs?q={provision.key}&kind=provision").get_data(as_text=True)
    assert re.findall(r'data-job="(\d+)"', by_key) == [str(provision.id)]
    done = admin_client.get("/admin/jobs?state=done&kind=alert").get_data(as_text=True)  # the dead_job alerts
    assert re.findall(r'data-job="(\d+)"', done) and 'data-state="done"' in done

    detail = admin_client.get(f"/admin/jobs/{provision.id}").get_data(as_text=True)
    error = re.search(r'<pre class="wrap" id="last-error">(.*?)</pre>', detail, re.S).group(1)
    assert "Connection refused" in error and "Traceback (most recent call last)" in error  # in full
    [instance] = market.rows(Instance)
    assert f'href="/admin/instances/{instance.instance_id}"' in detail and "1 of 1" in detail
    assert 'value="retry"' in detail and 'value="give_up"' in detail and "marketplace-said" not in detail
    chinese = admin_client.get("/admin/jobs?state=dead&lang=zh").get_data(as_text=True)
    assert "已失败" in chinese and "开通钩子" in chinese and "获取订单详情" in chinese
    timeline = admin_client.get(f"/admin/instances/{instance.instance_id}").get_data(as_text=True)
    assert f'href="/admin/jobs/{provision.id}"' in timeline
    with app.app_context():  # a job about an instance this server does not have: named, not linked
        db.session.execute(db.update(Job).where(Job.id == fetch.id).values(instance_id="NEVER-MADE-1"))
        db.session.commit()
    for url in (f"/admin/jobs/{fetch.id}", "/admin/jobs?state=dead"):
        page = admin_client.get(url).get_data(as_text=True)
        assert "NEVER-MADE-1" in page and "/admin/instances/NEVER-MADE-1" not in page


@pytest.mark.live  # a local receiver
def test_retry_on_the_page_queues_the_job_with_fresh_attempts_and_the_worker_delivers_it(app, market, admin_client):
    provision = dead_order(app, market)
    answer = post(admin_client, f"/admin/jobs/{provision.id}", action="retry")
    assert answer.status_code == 302 and answer.headers["Location"] == f"/admin/jobs/{provision.id}"
    [queued] = market.rows(Job, Job.id == provision.id)
    assert (queued.state, queued.attempts) == (JobState.QUEUED, 0)
    assert "is queued again" in admin_client.get(answer.headers["Location"]).get_data(as_text=True)
    hooks = Hooks()
    with Running(hooks, port=HOOK_PORT):
        run_worker(app)
    [done] = market.rows(Job, Job.id == provision.id)
    assert (done.state, done.attempts) == (JobState.DONE, 1)
    assert [e["id"] for e in hooks.events] == [provision.key]


@pytest.mark.live  # a local receiver
def test_give_up_keeps_who_when_and_why_and_the_job_never_runs_again(app, market, admin_client, runner):
    provision = dead_order(app, market)
    before = utcnow().replace(microsecond=0)
    answer = post(admin_client, f"/admin/jobs/{provision.id}", action="give_up", reason="  the buyer was refunded  ")
    assert answer.status_code == 302
    [given] = market.rows(Job, Job.id == provision.id)
    assert (given.state, given.given_up_by, given.given_up_reason) == (
        JobState.GIVEN_UP,
        "boss",
        "the buyer was refunded",
    )
    assert given.given_up_at >= before and given.attempts == 1
    page = admin_client.get(f"/admin/jobs/{provision.id}").get_data(as_text=True)
    assert "is given up" in page and "by boss" in page and "the buyer was refunded" in page
    assert 'value="give_up"' not in page  # nothing left to do to it
    # neither the worker nor `isvapp jobs retry --all-dead` runs it again (the dead fetch is retried)
    assert "queued again: 2 job(s)" in runner.invoke(args=["jobs", "retry", "--all-dead"]).output
    hooks = Hooks()
    with Running(hooks, port=HOOK_PORT):
        run_worker(app)
    delivered = [e["type"] for e in hooks.events]
    assert delivered and "created" not in delivered  # the others' hooks ran; the given-up one did not
    [still] = market.rows(Job, Job.id == provision.id)
    assert (still.state, still.attempts, still.run_after) == (JobState.GIVEN_UP, 1, given.run_after)
    refused = post(admin_client, f"/admin/jobs/{provision.id}", action="retry")
    assert refused.status_code == 409 and "Only a dead job can be retried" in refused.get_data(as_text=True)
    listing = admin_client.get("/admin/jobs?state=given_up").get_data(as_text=True)
    assert re.findall(r'data-job="(\d+)"', listing) == [str(provision.id)] and "given up" in listing


@pytest.mark.parametrize(
    "form, status, says",
    [
        ({"action": "give_up", "reason": ""}, 400, "Say why the job is given up"),
        ({"action": "give_up", "reason": "   "}, 400, "Say why the job is given up"),
        ({"action": "give_up", "reason": "x" * 501}, 400, "at most 500 characters"),
        ({"action": "give_up"}, 400, "Say why the job is given up"),
        ({"action": "delete"}, 400, "action must be retry or give_up"),
        ({"action": "give_up", "reason": "no token", "csrf_token": ""}, 400, "the form expired"),
    ],
)
def test_a_bad_retry_or_give_up_is_refused_by_name_and_changes_nothing(app, market, admin_client, form, status, says):
    provision = dead_order(app, market)
    before = market.rows(Job, Job.id == provision.id)[0]
    page = admin_client.get(f"/admin/jobs/{provision.id}").get_data(as_text=True)
    answer = admin_client.post(f"/admin/jobs/{provision.id}", data={"csrf_token": token(page), **form})
    assert answer.status_code == status and says in answer.get_data(as_text=True)
    after = market.rows(Job, Job.id == provision.id)[0]
    assert (after.state, after.attempts, after.given_up_by, after.updated_at) == (
        before.state,
        before.attempts,
        None,
        before.updated_at,
    )


def test_only_dead_jobs_are_retried_or_given_up_and_never_the_one_usage_push(app, market, admin_client):
    assert json.loads(market.g2(new_order(order="QUEUED1")).data)["resultCode"] == "000000"
    [queued] = market.rows(Job, Job.kind == "provision")
    answer = post(admin_client, f"/admin/jobs/{queued.id}", action="give_up", reason="stop it")
    assert answer.status_code == 409 and "this one is queued" in answer.get_data(as_text=True)
    assert post(admin_client, f"/admin/jobs/{queued.id}", action="retry").status_code == 409
    assert market.rows(Job, Job.id == queued.id)[0].state == JobState.QUEUED
    with app.app_context():  # the usage push, dead: one job for every record
        jobs.enqueue("usage_push", "usage")
        db.session.commit()
        db.session.execute(db.update(Job).where(Job.kind == "usage_push").values(state=JobState.DEAD))
        db.session.commit()
    [push] = market.rows(Job, Job.kind == "usage_push")
    answer = post(admin_client, f"/admin/jobs/{push.id}", action="give_up", reason="billing is off")
    assert answer.status_code == 409 and "no usage would be pushed again" in answer.get_data(as_text=True)
    assert market.rows(Job, Job.id == push.id)[0].state == JobState.DEAD
    assert admin_client.get("/admin/jobs/999999").status_code == 404


def test_retry_every_dead_job_from_the_list(app, market, admin_client):
    dead_order(app, market, "DEADALL1")
    dead_order(app, market, "DEADALL2")
    assert market.count(Job, Job.state == JobState.DEAD) == 6
    answer = post(admin_client, "/admin/jobs", action="retry_dead")
    assert answer.status_code == 302 and answer.headers["Location"] == "/admin/jobs?state=queued"
    assert market.count(Job, Job.state == JobState.DEAD) == 0
    assert market.count(Job, Job.state == JobState.QUEUED, Job.attempts == 0) == 6
    page = admin_client.get("/admin/jobs?state=queued").get_data(as_text=True)
    assert "6 dead job(s) queued again" in re.sub(r"<[^>]+>", "", page)


class RefusingMarket:
    """The order-query API answering a failure with its detail in resultMsg and extra_info."""

    ANSWER = {
        "resultCode": "MKT.0100",
        "resultMsg": "订单 DEADMKT 不存在 (order not found)",
        "extra_info": {"orderId": "DEADMKT", "原因": "无"},
    }

    def __call__(self, environ, start_response):
        return Response(json.dumps(self.ANSWER, ensure_ascii=False), 400, content_type="application/json")(
            environ, start_response
        )


@pytest.mark.live  # a local receiver
def test_the_marketplaces_result_msg_and_extra_info_are_shown_beside_the_error(app, market, admin_client):
    with Running(RefusingMarket()) as refusing:
        app.config.update(KOO_API_BASE_URL=refusing.url, KOO_AK="ak", KOO_SK="sk")
        settings.init_app(app)  # the settings are read when the app is made: again
        assert json.loads(market.g2(new_order(order="DEADMKT")).data)["resultCode"] == "000000"
        run_worker(app)
    [fetch] = market.rows(Job, Job.kind == "fetch_order")
    assert fetch.state == JobState.DEAD and "MKT.0100" in fetch.last_error
    page = admin_client.get(f"/admin/jobs/{fetch.id}").get_data(as_text=True)
    said = re.search(r'id="result-msg">(.*?)</dd>', page, re.S).group(1)
    extra = re.search(r'id="extra-info">(.*?)</pre>', page, re.S).group(1)
    assert said == "订单 DEADMKT 不存在 (order not found)"
    assert json.loads(extra.replace("&#34;", '"')) == RefusingMarket.ANSWER["extra_info"] and "原因" in extra


@pytest.mark.parametrize(
    "error, said",
    [
        (
            openapi.MarketError(
                "MKT.0100", "bad", result_msg='id "x"; extra_info: no', extra_info={"a": ["; extra_info: b"]}
            ),
            ('id "x"; extra_info: no', {"a": ["; extra_info: b"]}),
        ),
        (
            openapi.MarketError("MKT.0999", "internal", result_msg="System internal error."),
            ("System internal error.", None),
        ),
        (openapi.MarketError("MKT.0999", "internal", extra_info=[1, 2]), (None, [1, 2])),
        (openapi.MarketError("network", "no answer"), None),
        (RuntimeError("webhook answered HTTP 500"), None),
    ],
)
def test_the_marketplaces_words_are_read_back_from_a_jobs_error_text(error, said):
    text = f'Permanent: {error}\nTraceback (most recent call last):\n  File "x", line 1\nPermanent: {error}'
    assert openapi.said_in(text) == said
