"""Every unexpected error raises an alert (a 500 from any route; a job that fails: tests/test_metrics.py
and tests/test_alerts.py), grouped like the other alerts, and with SENTRY_DSN set goes to Sentry
with its secrets scrubbed: a local receiver stands in for Sentry."""

import gzip
import json
import time

import pytest
import requests
from isvapp import errorreports
from isvapp.background import usage
from isvapp.dashboard import views as dashboard
from isvapp.domain import apitokens, entitlements, licensecodes, logins
from isvapp.domain.callbacklog import is_marketplace_path
from isvapp.koo.signing import key_fingerprint
from isvapp.storage.models import Alert, TokenScope
from werkzeug.wrappers import Request, Response

from .helpers import KEY, metric, scrape, serving
from .live import LIVE_SECRET_KEY, LiveServer

FINGERPRINT = key_fingerprint(KEY)
LEAK = "leaky-secret-in-the-message-0042"


def broken(*args, **kwargs):
    raise RuntimeError(f"broke while holding {LEAK}")


def test_a_500_from_any_route_raises_one_alert_per_window_that_counts_them(app, client, market, monkeypatch):
    with app.app_context():
        token = apitokens.create_token(
            "product", [TokenScope.ENTITLEMENTS, TokenScope.USAGE], key_fingerprint=FINGERPRINT, keys=[FINGERPRINT]
        )
    bearer = {"Authorization": f"Bearer {token}"}
    monkeypatch.setattr(licensecodes, "verify", broken)
    monkeypatch.setattr(logins, "find_target", broken)
    monkeypatch.setattr(entitlements, "of_instance", broken)
    monkeypatch.setattr(usage, "add", broken)
    monkeypatch.setattr(dashboard, "render_template", broken)
    before = scrape(client)
    answers = [
        client.post("/relay/v1/verify", json={"license": "PL1"}),  # the License relay
        client.get("/login/acme"),  # the buyer's login
        client.get("/api/v1/entitlements/instances/I-1", headers=bearer),  # the entitlement API
        client.post(  # the usage API
            "/api/v1/usage",
            json={
                "instanceId": "I-1",
                "usageValue": 1,
                "beginTime": "2026-12-01T08:00:00Z",
                "endTime": "2026-12-01T09:00:00Z",
            },
            headers=bearer,
        ),
        client.get("/admin/login"),  # a page
    ]
    assert [(a.status_code, a.data) for a in answers] == [(500, b"internal error")] * 5
    [alert] = market.rows(Alert)
    assert (alert.kind, alert.count) == ("unexpected_error", 5)
    assert "POST /relay/v1/verify failed with RuntimeError at tests/" not in alert.text  # isvapp's own frame
    assert "POST /relay/v1/verify failed with RuntimeError at isvapp/productapi/relay/views.py:" in alert.text
    assert f"request id {answers[0].headers['X-Request-Id']}" in alert.text
    assert LEAK not in alert.text and LEAK not in alert.subject  # an error's text may hold anything
    assert (
        metric(scrape(client), "isvapp_unexpected_errors_total", source="request")
        - metric(before, "isvapp_unexpected_errors_total", source="request")
        == 5
    )


def test_the_marketplace_routes_keep_answering_000005_and_raise_their_own_alert(app, market, monkeypatch):
    from isvapp.produce import g2

    monkeypatch.setattr(g2.lifecycle, "prepare_new_instance", broken)
    body = {"activity": "newInstance", "orderId": "O-5", "orderLineId": "O-5-1", "businessId": "b-5", "testFlag": "1"}
    answer = market.g2(body)
    assert answer.status_code == 200 and json.loads(answer.data)["resultCode"] == "000005"
    assert [alert.kind for alert in market.rows(Alert)] == ["internal_error"]


# --- what Sentry would get ------------------------------------------------------------------------


def test_the_scrubber_blanks_secret_fields_settings_parameters_and_marketplace_bodies():
    config = {"KOO_ACCESS_KEY": "k-0123456789", "ALERT_SMTP_PASSWORD": "smtp-pass-99", "SENTRY_DSN": "http://pub@h/1"}
    scrub = errorreports.Scrubber(config, is_marketplace_path)
    event = {
        "request": {
            "url": "https://isv.example.com/produce",
            "query_string": "signature=sig-value-1&nonce=n-1&authToken=tok-value-2",
            "headers": {"Authorization": "Bearer abc", "X-Sign": "xs-value", "Host": "isv.example.com"},
            "cookies": {"session": "c-value"},
            "data": {"activity": "newInstance", "clientSecret": "cs-value"},
        },
        "exception": {"values": [{"type": "KeyError", "value": "k-0123456789 and smtp-pass-99 in GET /x?sign=s-v"}]},
        "breadcrumbs": {
            "values": [{"message": "POST https://qyapi.example/send?key=robot-key-7", "data": {"password": "p"}}]
        },
    }
    text = json.dumps(scrub(event, None))
    for secret in ("sig-value-1", "tok-value-2", "Bearer abc", "xs-value", "c-value", "cs-value", "k-0123456789"):
        assert secret not in text, secret
    assert "smtp-pass-99" not in text and "robot-key-7" not in text and "s-v" not in text
    assert "isv.example.com" in text and "nonce=n-1" in text and "KeyError" in text  # the rest is kept
    page = scrub({"request": {"url": "https://isv.example.com/admin/login", "data": {"name": "boss"}}}, None)
    assert page["request"]["data"] == {"name": "boss"}  # not a marketplace body: kept, fields scrubbed by name


class SentryStandIn:
    """Takes what sentry-sdk posts (envelopes to /api/<project>/envelope/), decompressed."""

    def __init__(self):
        self.received = []

    def __call__(self, environ, start_response):
        request = Request(environ)
        raw = request.get_data()
        if request.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        elif request.headers.get("Content-Encoding") == "br":
            import brotli  # only when sentry-sdk finds it installed

            raw = brotli.decompress(raw)
        self.received.append((request.path, raw.decode("utf-8", "replace")))
        return Response("{}", content_type="application/json")(environ, start_response)


@pytest.fixture
def sentry():
    stand_in = SentryStandIn()
    with serving(stand_in) as base:
        stand_in.dsn = base.replace("http://", "http://public@") + "/1"
        yield stand_in


@pytest.mark.live
def test_an_error_reaches_sentry_without_the_requests_secrets(tmp_path, sentry):
    signature, token, cookie = "sig-0f1e2d3c4b5a6978", "install-token-8a7b6c5d4e", "cookie-value-1a2b3c4d5e"
    env = {"ISVAPP_KOO_ACCESS_KEY": KEY, "ISVAPP_SENTRY_DSN": sentry.dsn, "ISVAPP_WORKERS": "1"}
    with LiveServer(tmp_path / "instance", env=env, app="tests.live_apps:relay_that_breaks()") as server:
        answer = requests.post(
            server.url + "/relay/v1/verify",
            params={"signature": signature, "authToken": "auth-token-5e4d3c2b1a"},
            json={"license": "PL1"},
            headers={"Authorization": f"Bearer {token}", "Cookie": f"isvapp_buyer={cookie}"},
            timeout=30,
        )
        assert answer.status_code == 500
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("RuntimeError" in body for _, body in sentry.received):
            time.sleep(0.2)
    events = [body for path, body in sentry.received if "RuntimeError" in body]
    assert events and all(path == "/api/1/envelope/" for path, _ in sentry.received)
    assert "/relay/v1/verify" in events[0] and "the relay broke on purpose" in events[0]
    everything = "\n".join(body for _, body in sentry.received)
    for secret in (signature, "auth-token-5e4d3c2b1a", token, cookie, KEY, LIVE_SECRET_KEY):
        assert secret not in everything, secret
