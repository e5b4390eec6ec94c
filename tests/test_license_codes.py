"""License codes (授权码) against a fake marketplace: the pages' bodies, the backup domain, the
upload of getLicenseAsync's licenses as a durable job, and the relay the installed software calls.

The live tests (a real gunicorn, a real `flask worker`, the installed software as a separate
process) are in tests/test_license_relay_live.py.
"""

import json
import re
from dataclasses import replace
from datetime import datetime, timedelta

import isvapp.settings
import pytest
from isvapp.background import uploads
from isvapp.config import DEFAULTS
from isvapp.koo import licensecodes
from isvapp.market import openapi
from isvapp.settings import load as load_settings
from isvapp.standins.fakemarket import create_fake_market
from isvapp.standins.serving import Running
from isvapp.storage.models import Alert, Job, JobState, License, LicenseCode, UploadState

from .helpers import AK, KEY, SK, async_request, lic2_order, row_state, run_until_idle, signed
from .live import free_port
from .tiers import live_fixture

# --- the pages' bodies ------------------------------------------------------------------------------


def test_the_query_body_is_the_pages_example():
    """查询授权码 (zh-cn_topic_0070649245), 请求示例, verbatim."""
    page = '{ "license" : "PLXXXXXX", "heartbeatInfo":{ "thirdPartyAccount":"myaccount1", "ip":"192.168.1.51" } }'
    assert licensecodes.query_v1_body("PLXXXXXX", "myaccount1", "192.168.1.51") == json.loads(page)
    assert licensecodes.query_v1_body("PLXXXXXX") == {"license": "PLXXXXXX"}


def test_the_usage_statistics_body_is_the_pages_first_example():
    """授权码软件使用统计 (zh-cn_topic_0000002290055385), 例子1, with its comment taken out."""
    page = '{"usage_info": [{"license": "PLXXXXXX", "software_usage_Info": [{"id": "account1"}]}]}'
    assert licensecodes.usage_body([("PLXXXXXX", [{"id": "account1"}])]) == json.loads(page)


@pytest.mark.parametrize(
    "build, words",
    [
        (lambda: licensecodes.query_v1_body("P" * 65), "license is longer than 64"),
        (lambda: licensecodes.query_v1_body("PLX", "a" * 257), "thirdPartyAccount is longer than 256"),
        (lambda: licensecodes.query_v1_body("PLX", "me", "1" * 33), "ip is longer than 32"),
        (lambda: licensecodes.query_v1_body("PLX", None, "10.0.0.1"), "thirdPartyAccount is required"),
        (lambda: licensecodes.query_v1_body(""), "license is required"),
        (
            lambda: licensecodes.usage_body([("PLX", [{"id": "a", "active_num": 3}])]),
            "exactly one of id and active_num",
        ),
        (lambda: licensecodes.usage_body([("PLX", [{}])]), "exactly one of id and active_num"),
        (lambda: licensecodes.usage_body([("PLX", [{"active_num": 10**9}])]), "at most 9 digits"),
        (lambda: licensecodes.usage_body([("PLX", [{"active_num": True}])]), "at most 9 digits"),
        (lambda: licensecodes.usage_body([("PLX", [{"id": str(n)} for n in range(101)])]), "1 to 100 entries"),
        (lambda: licensecodes.usage_body([(f"PL{n}", [{"id": "a"}]) for n in range(101)]), "1 to 100 license codes"),
        (lambda: licensecodes.query_v2_body([]), "1 to 100 license codes"),
    ],
)
def test_the_pages_limits_are_checked_before_sending(build, words):
    with pytest.raises(licensecodes.Invalid, match=words):
        build()


def test_answers_are_read_leniently():
    state, expiry = licensecodes.read_state(
        {"error_code": "92020000", "data": {"status": "NORMAL", "expireTime": "20991231235959"}}
    )
    assert state == "NORMAL" and expiry.year == 2099
    assert licensecodes.read_state({"resultCode": "MKT.0000"}) == (None, None)
    batch = licensecodes.read_batch(
        {
            "error_code": "92020000",
            "licenses": [
                {"license": "PLA", "status": "NORMAL"},
                {"license": "PLB", "state": "EXPIRED", "expire_time": "20200101000000"},
            ],
        }
    )
    assert batch["PLA"] == ("NORMAL", None) and batch["PLB"][0] == "EXPIRED"


# --- the open-API client against fake marketplaces ----------------------------------------------------


@live_fixture
def fake():
    with Running(create_fake_market(AK, SK, KEY)) as running:
        yield running


def settings_for(main, backup=""):
    return load_settings(
        {"KOO_API_BASE_URL": main, "KOO_API_BACKUP_URL": backup, "KOO_AK": AK, "KOO_SK": SK, "KOO_ACCESS_KEY": KEY}
    )


def test_the_backup_domain_is_the_pages_cn_domain_beside_the_china_and_the_international_main_ones():
    """The China pages (License, usage push) and the international "Pushing the Pay-per-Use
    Resource Usage (New)" (topic_0070649117: "If mkt-intl.myhuaweicloud.com is unavailable, try
    mkt.myhuaweicloud.cn.") name the same backup; no EU page names one (docs/protocol.md §13.1)."""
    assert load_settings(DEFAULTS).api_backup_url == "https://mkt.myhuaweicloud.cn"
    intl = {**DEFAULTS, "KOO_API_BASE_URL": "https://mkt-intl.myhuaweicloud.com"}
    assert load_settings(intl).api_backup_url == "https://mkt.myhuaweicloud.cn"
    assert load_settings({**intl, "KOO_API_BASE_URL": "https://mkt-intl.myhuaweicloud.com/"}).api_backup_url == (
        "https://mkt.myhuaweicloud.cn"
    )
    assert load_settings({**DEFAULTS, "KOO_API_BASE_URL": "https://mkt.myhuaweicloud.eu"}).api_backup_url == ""
    assert load_settings({**intl, "KOO_API_BACKUP_URL": ""}).api_backup_url == ""


def test_every_call_goes_to_the_backup_domain_when_the_main_one_is_down(fake):
    settings = settings_for(f"http://127.0.0.1:{free_port()}", fake.url)  # nothing listens on the main one
    assert openapi.activate_license(settings, "PLXXXXXX") == openapi.activate_license(settings, "PLXXXXXX")
    assert openapi.query_license(settings, "PLXXXXXX")[0] == "NORMAL"
    assert openapi.query_order(settings, "MOCKONETIMENEW")["orderId"] == "MOCKONETIMENEW"
    assert openapi.report_software_usage(settings, [("PLXXXXXX", [{"active_num": 3}])])["error_code"] == "92020000"
    # Each call was signed for the host it reached: the fake verified every signature.
    assert [path for _, path in fake.app.extensions["fake_market"].calls] == [
        licensecodes.ACTIVATE,
        licensecodes.ACTIVATE,
        licensecodes.QUERY_V1,
        openapi.ORDER_QUERY,
        licensecodes.USAGE_INFO,
    ]


def test_a_main_domain_answering_without_a_result_code_is_tried_on_the_backup_but_an_answer_is_not(fake):
    with Running(create_fake_market(AK, SK, KEY)) as main:
        settings = settings_for(main.url, fake.url)
        main.app.config["FAKE_MARKET_ANSWER_NEXT"] = [(502, b"<html>502 Bad Gateway</html>")]
        assert openapi.query_license(settings, "PLXXXXXX")[0] == "NORMAL"
        assert len(fake.app.extensions["fake_market"].calls) == 1
        with pytest.raises(openapi.MarketError, match="92020002") as error:
            openapi.query_license(settings, "PLNOSUCHCODE")  # the main domain answered: no second try
        assert not error.value.elsewhere and len(fake.app.extensions["fake_market"].calls) == 1
        main.app.config["FAKE_MARKET_FAIL_NEXT"] = 1  # HTTP 500 with MKT.0999: the marketplace's answer too
        with pytest.raises(openapi.MarketError, match="MKT.0999") as error:
            openapi.query_license(settings, "PLXXXXXX")
        assert error.value.later and len(fake.app.extensions["fake_market"].calls) == 1


@pytest.mark.parametrize(
    "answer, words",
    [
        ((200, b"<html>maintenance</html>"), "not a JSON object"),
        (
            (200, b'{"error_code": "92029999", "error_msg": "something new"}'),
            'unknown code; the marketplace said: "something new"',
        ),
        ((200, b'["a list"]'), "not a JSON object"),
        ((200, b'{"nothing": "here"}'), "no result code"),
    ],
)
def test_an_odd_answer_is_a_clear_error(fake, answer, words):
    fake.app.config["FAKE_MARKET_ANSWER_NEXT"] = [answer]
    with pytest.raises(openapi.MarketError, match=words):
        openapi.query_license(settings_for(fake.url), "PLXXXXXX")


def test_a_call_past_the_deadline_is_a_network_error(fake):
    fake.app.config["FAKE_MARKET_DELAY_S"] = 1.5
    settings = replace(settings_for(fake.url), api_timeout_s=0.5)
    with pytest.raises(openapi.MarketError, match="no answer within") as error:
        openapi.activate_license(settings, "PLXXXXXX")
    assert error.value.code == "network"


def test_the_upload_sends_the_same_bytes_every_time_as_a_file_or_a_string(fake):
    settings = settings_for(fake.url)
    document = "许可证 license text\n" * 10
    openapi.upload_license(settings, "evt-1", document)
    openapi.upload_license(settings, "evt-1", document)
    openapi.upload_license(replace(settings, license_upload_mode="string"), "evt-2", document)
    uploads_seen = fake.app.extensions["fake_market"].uploads
    assert uploads_seen == {"evt-1": [document.encode()] * 2, "evt-2": [document.encode()]}
    first = openapi.multipart("file", document.encode(), True, "b")[0]
    assert first == openapi.multipart("file", document.encode(), True, "b")[0]


def test_an_oversize_license_is_refused_before_it_is_sent(fake):
    settings = replace(settings_for(fake.url), license_upload_max_bytes=100)
    with pytest.raises(openapi.MarketError, match="over KOO_LICENSE_UPLOAD_MAX_BYTES") as error:
        openapi.upload_license(settings, "evt-1", "x" * 101)
    assert error.value.code == "invalid" and fake.app.extensions["fake_market"].calls == []


# --- getLicenseAsync's upload, a durable job ------------------------------------------------------------


@pytest.fixture
def app_config(fake):
    return {"KOO_API_BASE_URL": fake.url, "KOO_AK": AK, "KOO_SK": SK, "JOB_RETRY_BASE_S": 0, "JOB_MAX_ATTEMPTS": 2}


def test_an_async_license_is_uploaded_by_the_worker(app, market, fake):
    signed(market.g2(lic2_order(business="lic-up"), path="/license"))
    answer = signed(market.g2(async_request("lic-up", event="evt-up"), path="/license"))
    [row] = market.rows(License)
    assert row.upload_state == UploadState.PENDING and market.count(Job, Job.kind == uploads.KIND) == 1
    run_until_idle(app)
    [row] = market.rows(License)
    assert row.upload_state == UploadState.UPLOADED and row.uploaded_at and row.upload_error is None
    assert fake.app.extensions["fake_market"].uploads == {"evt-up": [answer["license"].encode()]}


def test_a_renewal_uploads_its_new_document_for_the_same_event(app, market, fake):
    signed(market.g2(lic2_order(business="lic-rn"), path="/license"))
    signed(market.g2(async_request("lic-rn", event="evt-rn"), path="/license"))
    signed(
        market.g2(
            {
                "activity": "refreshInstance",
                "instanceId": "lic-rn",
                "orderId": "R1",
                "orderLineId": "R1-1",
                "scene": "RENEWAL",
                "expireTime": "20991231000000",
                "testFlag": "0",
            },
            path="/license",
        )
    )
    run_until_idle(app)
    documents = {r.document.encode(): r.upload_state for r in market.rows(License)}
    sent = fake.app.extensions["fake_market"].uploads["evt-rn"]
    assert len(documents) == 2 and sorted(sent) == sorted(documents)
    assert set(documents.values()) == {UploadState.UPLOADED}


def test_a_dead_upload_marks_the_document_and_raises_an_alert(app, market, fake):
    fake.app.config["FAKE_UPLOAD_FIELD"] = "license"  # the marketplace wants another part: refused
    signed(market.g2(lic2_order(business="lic-dead"), path="/license"))
    signed(market.g2(async_request("lic-dead", event="evt-dead"), path="/license"))
    run_until_idle(app)
    [row] = market.rows(License)
    assert row.upload_state == UploadState.FAILED and "92020002" in row.upload_error
    [job] = market.rows(Job, Job.kind == uploads.KIND)
    assert job.state == JobState.DEAD and job.attempts == 1  # refused as it stands: no retry
    [alert] = market.rows(Alert, Alert.kind == "dead_job")
    assert "license_upload" in alert.subject


def test_an_upload_the_marketplace_could_not_take_is_retried(app, market, fake):
    signed(market.g2(lic2_order(business="lic-retry"), path="/license"))
    run_until_idle(app)  # the order's details first: the failure below is the upload's
    signed(market.g2(async_request("lic-retry", event="evt-retry"), path="/license"))
    fake.app.config["FAKE_MARKET_FAIL_NEXT"] = 1
    run_until_idle(app)
    [job] = market.rows(Job, Job.kind == uploads.KIND)
    assert (job.state, job.attempts) == (JobState.DONE, 2)
    assert len(fake.app.extensions["fake_market"].uploads["evt-retry"]) == 1
    assert market.rows(License)[0].upload_state == UploadState.UPLOADED


# --- the relay, in process (the live one is in test_license_relay_live.py) ------------------------------


def relay(client, path, body, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.post(f"/relay/v1/{path}", json=body, headers=headers)
    return response.status_code, response.get_json()


def test_the_relay_activates_verifies_and_reports(app, client, market, fake, monkeypatch):
    from isvapp.domain import licensecodes as relay_domain

    monkeypatch.setattr(relay_domain, "utcnow", lambda: datetime(2026, 12, 2, 23, 59, 59))  # one UTC day
    status, activated = relay(client, "activate", {"license": "PLXXXXXX"})
    assert status == 200 and activated["status"] == "NORMAL" and activated["expireTime"] == "2099-12-31T23:59:59Z"
    token = activated["installationToken"]
    status, verified = relay(client, "verify", {"license": "PLXXXXXX", "account": "myaccount1"}, token)
    assert status == 200 and verified["source"] == "marketplace"
    assert fake.app.extensions["fake_market"].queries[-1] == {
        "license": "PLXXXXXX",
        "heartbeatInfo": {"thirdPartyAccount": "myaccount1"},
    }
    assert relay(client, "usage", {"license": "PLXXXXXX", "id": "account1"}, token) == (
        202,
        {"license": "PLXXXXXX", "accepted": True, "already": False},
    )
    assert relay(client, "usage", {"license": "PLXXXXXX", "id": "account1"}, token)[1]["already"] is True
    run_until_idle(app)
    assert fake.app.extensions["fake_market"].software_usage == [
        {"usage_info": [{"license": "PLXXXXXX", "software_usage_Info": [{"id": "account1"}]}]}
    ]
    [code] = market.rows(LicenseCode)
    assert code.usage_reports == 1 and code.activated_from == code.verified_from == "127.0.0.1"
    assert token.split(".")[1] not in json.dumps([c.__dict__ for c in market.rows(LicenseCode)], default=str)


@pytest.mark.parametrize(
    "path, body, token, expected",
    [
        ("activate", {"license": "PLNOSUCHCODE"}, None, (404, "unknown_license")),
        ("activate", {"license": "P" * 65}, None, (400, "invalid_request")),
        ("activate", {}, None, (400, "invalid_request")),
        ("verify", {"license": "PLXXXXXX"}, "nope.nope", (401, "unauthorized")),
        ("verify", {"license": "PLXXXXXX"}, None, (401, "unauthorized")),
        ("usage", {"license": "PLXXXXXX", "id": "a", "active_num": 1}, None, (400, "invalid_request")),
    ],
)
def test_the_relay_refuses_clearly_and_changes_nothing(client, market, path, body, token, expected):
    status, answer = relay(client, path, body, token)
    assert (status, answer["error"]) == expected and answer["message"]
    assert market.count(LicenseCode) == 0 and market.count(Job) == 0


def test_a_token_of_another_code_is_refused(client, fake):
    fake.app.config["FAKE_LICENSES"]["PLOTHER"] = {"status": "NORMAL"}
    token = relay(client, "activate", {"license": "PLOTHER"})[1]["installationToken"]
    relay(client, "activate", {"license": "PLXXXXXX"})
    assert relay(client, "verify", {"license": "PLXXXXXX"}, token)[0] == 401


def test_the_relay_is_rate_limited_per_code(app, client, monkeypatch):
    from isvapp.domain import licensecodes as relay_domain

    minute = datetime(2026, 12, 2, 18, 44, 30)  # one minute's budget: the clock stands still in it
    monkeypatch.setattr(relay_domain, "utcnow", lambda: minute)
    app.extensions["isvapp"] = replace(app.extensions["isvapp"], relay_per_minute=3)
    assert [relay(client, "activate", {"license": "PLXXXXXX"})[0] for _ in range(4)] == [200, 200, 200, 429]
    assert relay(client, "activate", {"license": "PLEXPIRED"})[0] == 200  # another code has its own budget
    minute += timedelta(minutes=1)
    assert relay(client, "activate", {"license": "PLXXXXXX"})[0] == 200  # the next minute, a new budget


def test_a_relay_budget_of_0_refuses_every_call(app, client):
    """LICENSE_RELAY_PER_MINUTE = 0 is 0 calls a minute (read as the default, 30, before the
    settings registry: `or 30`)."""
    app.config["LICENSE_RELAY_PER_MINUTE"] = 0
    isvapp.settings.init_app(app)  # read once per app: read them again
    answer = relay(client, "activate", {"license": "PLXXXXXX"})
    assert answer[0] == 429 and answer[1]["error"] == "rate_limited"


# --- the merchant's pages -------------------------------------------------------------------------------


def test_the_go_live_license_checklist_and_the_pages_show_upload_activation_query_and_usage(app, browser, market):
    signed(market.g2({**lic2_order(business="lic-page"), "testFlag": "1"}, path="/license"))  # a debugging call
    page = browser.get("/admin/go-live").get_data(as_text=True)
    for scenario in ("upload", "activation", "verification", "statistics"):
        assert row_state(page, f"license-{scenario}") == "not debugged yet", scenario
    signed(market.g2({**async_request("lic-page", event="evt-page"), "testFlag": "1"}, path="/license"))
    token = relay(browser, "activate", {"license": "PLXXXXXX"})[1]["installationToken"]
    relay(browser, "verify", {"license": "PLXXXXXX"}, token)
    relay(browser, "usage", {"license": "PLXXXXXX", "active_num": 7}, token)
    run_until_idle(app)
    page = browser.get("/admin/go-live").get_data(as_text=True)
    for scenario in ("upload", "activation", "verification", "statistics"):
        assert row_state(page, f"license-{scenario}") == "passed", scenario
    for lang, words in (("en", ("License codes", "uploaded")), ("zh", ("授权码", "已上传"))):
        codes_page = browser.get(f"/admin/license-codes?lang={lang}").get_data(as_text=True)
        assert "PLXXXXXX" in codes_page and words[0] in codes_page and "127.0.0.1" in codes_page
        assert token.split(".")[1] not in codes_page
        [row] = market.rows(License)
        assert words[1] in browser.get(f"/admin/licenses/{row.license_id}?lang={lang}").get_data(as_text=True)


def test_the_v2_batch_query_refreshes_the_stored_codes(client, market, runner, fake):
    relay(client, "activate", {"license": "PLXXXXXX"})
    relay(client, "activate", {"license": "PLEXPIRED"})
    fake.app.config["FAKE_LICENSES"]["PLXXXXXX"]["status"] = "FROZEN"  # changed at the marketplace since
    result = runner.invoke(args=["license-codes", "query"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "PLXXXXXX FROZEN 2099-12-31T23:59:59Z",
        "PLEXPIRED EXPIRED 2020-01-01T00:00:00Z",
    ]
    assert fake.app.extensions["fake_market"].queries[-1] == {"licenses": ["PLXXXXXX", "PLEXPIRED"]}
    assert {c.code: c.state for c in market.rows(LicenseCode)} == {"PLXXXXXX": "FROZEN", "PLEXPIRED": "EXPIRED"}
    assert "PLNOSUCH not in the answer" in runner.invoke(args=["license-codes", "query", "PLNOSUCH"]).output
    assert "license is longer than 64" in runner.invoke(args=["license-codes", "query", "P" * 65]).output


def test_the_relay_serves_the_last_state_only_within_the_grace_period(app, client, fake):
    token = relay(client, "activate", {"license": "PLXXXXXX"})[1]["installationToken"]
    fake.app.config["FAKE_MARKET_FAIL_NEXT"] = 1
    status, cached = relay(client, "verify", {"license": "PLXXXXXX"}, token)
    assert status == 200 and cached["source"] == "cache" and cached["valid"] and cached["graceUntil"]
    app.extensions["isvapp"] = replace(app.extensions["isvapp"], relay_grace_s=0)
    fake.app.config["FAKE_MARKET_FAIL_NEXT"] = 1
    status, refused = relay(client, "verify", {"license": "PLXXXXXX"}, token)
    assert (status, refused["error"]) == (503, "marketplace_unreachable")


def test_an_expired_code_is_not_valid(client, fake):
    status, answer = relay(client, "activate", {"license": "PLEXPIRED"})
    assert status == 200 and answer["valid"] is False and answer["status"] == "EXPIRED"


def test_one_address_trying_codes_is_stopped_before_the_marketplace_and_old_budgets_are_pruned(
    app, client, fake, monkeypatch
):
    from isvapp.background.maintenance import prune
    from isvapp.domain import licensecodes as relay_domain
    from isvapp.storage.models import RelayBudget

    minute = datetime(2026, 12, 2, 18, 44, 30)
    monkeypatch.setattr(relay_domain, "utcnow", lambda: minute)
    app.extensions["isvapp"] = replace(app.extensions["isvapp"], relay_per_address_minute=2)
    answers = [relay(client, "activate", {"license": f"PLGUESS{n}"}) for n in range(3)]
    assert [status for status, _ in answers] == [404, 404, 429] and "from this address" in answers[2][1]["message"]
    assert len(fake.app.extensions["fake_market"].calls) == 2  # the third never reached the marketplace
    with app.app_context():
        assert db_count(RelayBudget) == 3  # the address's, and the two codes tried
        assert prune(app.extensions["isvapp"], 0, now=minute + timedelta(hours=2))["relay_budgets"] == 3
        assert db_count(RelayBudget) == 0


def db_count(model):
    from isvapp.extensions import db
    from sqlalchemy import func, select

    return db.session.execute(select(func.count()).select_from(model)).scalar_one()


def test_the_instance_page_lists_the_instances_own_jobs(app, browser, market):
    """Found through the instance's events and licenses (the jobs table keeps no instance index):
    the order's jobs and its license's upload, none of another instance's."""
    signed(market.g2(lic2_order(business="lic-jobs"), path="/license"))
    signed(market.g2(async_request("lic-jobs", event="evt-jobs"), path="/license"))
    signed(market.g2(lic2_order(order="CS2310270000OTH", business="lic-other"), path="/license"))
    signed(market.g2(async_request("lic-other", event="evt-other"), path="/license"))

    def listed(instance_id):
        page = browser.get(f"/admin/instances/{instance_id}").get_data(as_text=True)
        return sorted(re.findall(r'<td data-job="(\w+)">', page))

    expected = sorted(job.kind for job in market.rows(Job, Job.instance_id == "lic-jobs"))
    assert {"fetch_order", "license_upload", "provision"} <= set(expected)
    assert listed("lic-jobs") == expected and listed("lic-other") == expected  # each its own, not both


def test_the_marketplaces_failure_detail_is_kept_on_the_jobs_error_and_the_pages(app, browser, market, fake):  # noqa: F811
    """The order query's error page: a failed answer's resultMsg carries the failure's detail beyond
    the field description, to be read with extra_info. Both are kept as sent, beside isvapp's own
    explanation of the code, on the job's error, the instance page, the go-live page and the
    license's upload error."""
    import html

    detail = "Instance ID not found. " + "; ".join(f"instanceId lic-detail 不存在 (line {n})" for n in range(12))
    sent = {"resultCode": "MKT.9001", "resultMsg": detail, "extra_info": {"instanceId": "lic-detail"}}
    assert 300 < len(detail) <= 1024  # resultMsg is String 1,024 on the order query's page
    answer = (500, json.dumps(sent, ensure_ascii=False).encode())
    words = [f'"{detail}"', '{"instanceId": "lic-detail"}']
    fake.app.config["FAKE_MARKET_ANSWER_NEXT"] = [answer] * 2  # the order's details, twice (JOB_MAX_ATTEMPTS)
    signed(market.g2(lic2_order(business="lic-detail"), path="/license"))
    run_until_idle(app)
    [job] = market.rows(Job, Job.kind == "fetch_order")
    assert job.state == JobState.DEAD and openapi.MKT_MESSAGES["MKT.9001"] in job.last_error
    assert all(w in job.last_error for w in words), job.last_error
    fake.app.config["FAKE_MARKET_ANSWER_NEXT"] = [answer] * 2  # the upload of its license
    signed(market.g2(async_request("lic-detail", event="evt-detail"), path="/license"))
    run_until_idle(app)
    [row] = market.rows(License)
    pages = {
        "instance": browser.get("/admin/instances/lic-detail"),
        "go-live": browser.get("/admin/go-live"),
        "license": browser.get(f"/admin/licenses/{row.license_id}"),
    }
    for name, page in pages.items():
        text = html.unescape(page.get_data(as_text=True))
        assert openapi.MKT_MESSAGES["MKT.9001"] in text and all(w in text for w in words), name
