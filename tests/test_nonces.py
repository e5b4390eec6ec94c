"""A nonce serves one request, read-only activities included: a different, correctly signed request
that reuses the nonce of an earlier queryInstance or changeInstanceCheck gets 000001, on every
generation and on every host; an identical resend still gets the first answer, byte for byte."""

import json
import tempfile
from pathlib import Path

import isvapp.settings
import pytest
import requests
from isvapp.koo import codes
from isvapp.koo.signing import g2_signed_request, kit_signed_request, new_nonce
from isvapp.storage.models import Instance, SignedRequest, Tenant
from sqlalchemy import func, select

from .helpers import KEY, KIT_KEY, TENANT, answer_of, created, new_order
from .live import LiveServer

READ_ONLY = [
    ("/produce", lambda iid: {"activity": "queryInstance", "instanceId": iid}),
    (
        "/produce",
        lambda iid: {
            "activity": "changeInstanceCheck",
            "instanceId": iid,
            "productInfo": {"skuCode": "big"},
            "testFlag": "0",
        },
    ),
    ("/license", lambda iid: {"activity": "queryInstance", "instanceId": iid}),
]


def g2_with(market, body, nonce, path="/produce"):
    return answer_of(market.g2(body, nonce=nonce, path=path))


@pytest.mark.parametrize("path, read", READ_ONLY, ids=["g2-query", "g2-change-check", "license2-query"])
def test_a_read_only_requests_nonce_cannot_serve_a_different_request(market, path, read):
    iid = created(market)
    nonce = new_nonce()
    first = market.g2(read(iid), nonce=nonce, path=path)
    assert json.loads(first.data)["resultCode"] == codes.SUCCESS
    # A different request (here a new order, which would change things) with the same nonce:
    refused = g2_with(market, new_order(order="CS-OTHER"), nonce)
    assert refused["resultCode"] == codes.AUTH_FAILED and "nonce" in refused["resultMsg"]
    assert market.count(Instance) == 1
    # ...and a different query with it: refused too, even though a query changes nothing.
    assert g2_with(market, read("another-instance"), nonce, path)["resultCode"] == codes.AUTH_FAILED


def test_an_identical_resend_of_a_query_gets_the_first_answer_byte_for_byte(market, app):
    app.config["KOO_V2_PLAINTEXT_APPINFO"] = False  # encrypted appInfo: a fresh answer would differ
    isvapp.settings.init_app(app)  # read once per app: read them again
    iid = created(market)
    raw, query = g2_signed_request(KEY, {"activity": "queryInstance", "instanceId": iid})
    first = market.send("POST", "/produce", query_string=query, data=raw, content_type="application/json")
    again = market.send("POST", "/produce", query_string=query, data=raw, content_type="application/json")
    assert json.loads(first.data)["resultCode"] == codes.SUCCESS
    assert again.data == first.data and again.headers["Body-Sign"] == first.headers["Body-Sign"]


def test_a_stored_query_answer_holds_no_credential_in_the_clear(market, app):
    iid = created(market)
    answer = answer_of(market.g2({"activity": "queryInstance", "instanceId": iid}))
    password = answer["info"][0]["appInfo"]["password"]
    stored = [row.answer for row in market.rows(SignedRequest)]
    assert len(stored) == 2 and all(password.encode() not in blob for blob in stored)


def test_a_refused_query_claims_nothing(market):
    nonce = new_nonce()
    refused = g2_with(market, {"activity": "queryInstance", "instanceId": "nope"}, nonce)
    assert refused["resultCode"] == codes.INSTANCE_NOT_FOUND
    assert market.count(SignedRequest) == 0


def test_a_kit_nonce_serves_one_request(market):
    nonce = new_nonce()
    raw, headers = kit_signed_request(KIT_KEY, TENANT, nonce=nonce)
    assert (
        answer_of(market.send("POST", "/produce/produceAPI/v2/tenantSync", data=raw, headers=headers), key=KIT_KEY)[
            "resultCode"
        ]
        == codes.SUCCESS
    )
    other, headers = kit_signed_request(KIT_KEY, {**TENANT, "tenantId": "another-tenant"}, nonce=nonce)
    refused = answer_of(
        market.send("POST", "/produce/produceAPI/v2/tenantSync", data=other, headers=headers), key=KIT_KEY
    )
    assert refused["resultCode"] == codes.AUTH_FAILED and market.count(Tenant) == 1


@pytest.mark.live
def test_across_hosts_a_querys_nonce_is_refused_on_the_other_host(database_uri):
    """Two gunicorn servers on one database (PostgreSQL, or one SQLite file two servers share)."""
    with tempfile.TemporaryDirectory() as folder:
        env = {"ISVAPP_KOO_ACCESS_KEY": KEY}
        with LiveServer(Path(folder), workers=1, env=env) as one, LiveServer(Path(folder), workers=1, env=env) as two:

            def post(server, body, nonce):
                raw, query = g2_signed_request(KEY, body, nonce=nonce)
                return requests.post(server.url + "/produce", params=query, data=raw, timeout=10).json()

            iid = post(one, new_order(order="CS-HOSTS"), new_nonce())["instanceId"]
            nonce = new_nonce()
            assert post(one, {"activity": "queryInstance", "instanceId": iid}, nonce)["resultCode"] == codes.SUCCESS
            refused = post(two, new_order(order="CS-HOSTS-2"), nonce)
            assert refused["resultCode"] == codes.AUTH_FAILED
            engine = one.engine()
            try:
                with engine.connect() as conn:
                    assert conn.execute(select(func.count()).select_from(Instance.__table__)).scalar_one() == 1
            finally:
                engine.dispose()


def test_answers_that_carry_credentials_are_never_cached(market):
    iid = created(market)
    response = market.g2({"activity": "queryInstance", "instanceId": iid})
    assert "password" in answer_of(response)["info"][0]["appInfo"]
    assert response.headers["Cache-Control"] == "no-store"
    refused = market.g2({"activity": "queryInstance", "instanceId": iid}, key="not-the-key")
    assert refused.headers["Cache-Control"] == "no-store"
