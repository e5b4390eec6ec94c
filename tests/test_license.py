"""GET /license (License-G1) and POST /license (License-2.0): documents, lifecycle, idempotency."""

import base64
import json
import os
import stat
from datetime import datetime

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from isvapp.koo import codes, licensedoc
from isvapp.storage.models import Answer, Event, Instance, InstanceState, License, LicenseState

from .helpers import WIRE, async_request, lic2_order, signed

# The reference's License-G1 examples were signed in 2023: the G1 window is widened to take them.
REFERENCE_WINDOW_S = 20 * 365 * 86400


@pytest.fixture
def app_config():
    return {"KOO_G1_WINDOW_S": REFERENCE_WINDOW_S}


def public_key(runner):
    result = runner.invoke(args=["license-key"])
    assert result.exit_code == 0 and "BEGIN PUBLIC KEY" in result.output
    return result.output


def plain_generator(payload):
    """A merchant's own license format (used through LICENSE_GENERATOR)."""
    return f"LIC-{payload['order']}-{payload.get('expires', 'forever')}"


# --- License-G1 -----------------------------------------------------------------------------------


def test_reference_get_license_request_gets_a_verifiable_license(market, runner):
    answer = signed(market.send("GET", "/license?" + WIRE))
    assert answer["resultCode"] == codes.SUCCESS and list(answer) == ["resultCode", "resultMsg", "license"]
    payload = licensedoc.verify_document(public_key(runner), answer["license"])
    assert (
        payload["order"],
        payload["customer"],
        payload["customerName"],
        payload["fingerprint"],
        payload["test"],
    ) == ("CS2301010000ABCDE", "c-0001", "Zhang San 张三", "ABCDEFGHIJKLMNOPQRSTUVWX", True)
    [instance] = market.rows(Instance)
    assert (instance.instance_id, instance.generation, instance.product_type) == ("b-0001", "LIC1", "license")


def test_the_same_order_always_gets_the_same_license(market):
    first = market.send("GET", "/license?" + WIRE)
    retry = market.g1(
        {
            "activity": "getLicense",
            "businessId": "b-0002",
            "customerId": "c-0001",
            "customerName": "Zhang San 张三",
            "orderId": "CS2301010000ABCDE",
            "productId": "00301-666666-0--0",
            "testFlag": "1",
            "saasExtendParams": "W3sibmFtZSI6Im1hY2hpbmVDb2RlIiwidmFsdWUiOiJBQkNERUZHSElKS0xNTk9QUVJTVFVWV1gifV0=",
        },
        path="/license",
    )
    assert retry.data == first.data
    assert market.count(License) == 1 and market.count(Instance) == 1


def test_tampered_license_is_refused_by_the_verifier(market, runner):
    text = signed(market.send("GET", "/license?" + WIRE))["license"]
    header, body, signature = text.split(".")
    forged = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged["expires"] = "2099-01-01T00:00:00Z"
    forged_body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    with pytest.raises(ValueError, match="signature"):
        licensedoc.verify_document(public_key(runner), f"{header}.{forged_body}.{signature}")
    with pytest.raises(ValueError):
        licensedoc.verify_document(public_key(runner), "garbage")


def test_a_license_is_a_standard_jwt_a_stock_library_verifies(market, runner):
    """PyJWT with nothing but the public key: EdDSA, the key's kid, and the registered claims
    (jti the license, sub the instance, iat, nbf, exp) beside the payload's own fields."""
    signed(market.send("GET", "/license?" + WIRE))
    refresh = {"activity": "refreshLicense", "instanceId": "b-0001", "orderId": "R-1", "expireTime": "20310101000000"}
    text = signed(market.g1(refresh, path="/license"))["license"]  # a document with an end
    pem = public_key(runner)
    claims = jwt.decode(text, pem, algorithms=["EdDSA"], options={"require": ["exp", "iat", "jti", "sub"]})
    assert claims["jti"] == claims["license"] and claims["sub"] == claims["instance"]
    assert claims["exp"] == int(datetime.fromisoformat(claims["expires"].replace("Z", "+00:00")).timestamp())
    header = jwt.get_unverified_header(text)
    assert header["alg"] == "EdDSA" and header["typ"] == "JWT" and len(header["kid"]) == 22
    assert licensedoc.verify_document(pem, text) == claims


def test_a_document_issued_in_the_old_format_still_verifies():
    """ISVLIC1.<payload>.<signature>, as isvapp issued them before: made here the way it was."""
    key = Ed25519PrivateKey.generate()
    pem = licensedoc.public_key_pem(key)
    payload = {"license": "abc", "instance": "i-1", "expires": "2031-01-01T00:00:00Z"}
    body = base64.urlsafe_b64encode(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).rstrip(b"=")
    signed_part = b"ISVLIC1." + body
    signature = base64.urlsafe_b64encode(key.sign(signed_part)).rstrip(b"=")
    document = (signed_part + b"." + signature).decode()
    assert licensedoc.verify_document(pem, document) == payload
    with pytest.raises(ValueError, match="signature"):
        licensedoc.verify_document(pem, document[:-4] + ("AAAA" if not document.endswith("AAAA") else "BBBB"))


def test_refresh_expire_release_mark_the_documents(market, runner):
    signed(market.send("GET", "/license?" + WIRE))
    refresh = {
        "activity": "refreshLicense",
        "instanceId": "b-0001",
        "orderId": "RENEW-1",
        "expireTime": "20310101000000",
    }
    renewed = signed(market.g1(refresh, path="/license"))
    assert renewed["resultCode"] == codes.SUCCESS
    assert licensedoc.verify_document(public_key(runner), renewed["license"])["expires"] == "2031-01-01T00:00:00Z"
    assert market.g1(refresh, path="/license").data == market.g1(refresh, path="/license").data
    assert sorted(row.state for row in market.rows(License)) == [LicenseState.ACTIVE, LicenseState.SUPERSEDED]
    expire = {"activity": "expireLicense", "instanceId": "b-0001", "orderId": "CS2301010000ABCDE"}
    assert signed(market.g1(expire, path="/license"))["resultCode"] == codes.SUCCESS
    assert market.rows(Instance)[0].state == InstanceState.EXPIRED
    assert market.count(License, License.state == LicenseState.EXPIRED) == 1
    release = {"activity": "releaseLicense", "instanceId": "b-0001"}
    assert signed(market.g1(release, path="/license"))["resultCode"] == codes.SUCCESS
    assert signed(market.g1(release, path="/license"))["resultCode"] == codes.SUCCESS
    assert market.count(License, License.state == LicenseState.RELEASED) == 1
    assert market.rows(Instance)[0].state == InstanceState.RELEASED


@pytest.mark.parametrize(
    "params, code, words",
    [
        (
            {"activity": "refreshLicense", "instanceId": "nope", "orderId": "o", "expireTime": "20310101000000"},
            codes.INSTANCE_NOT_FOUND,
            "nope",
        ),
        ({"activity": "expireLicense", "instanceId": "nope", "orderId": "o"}, codes.INSTANCE_NOT_FOUND, "nope"),
        ({"activity": "releaseLicense", "instanceId": "nope"}, codes.INSTANCE_NOT_FOUND, "nope"),
        ({"activity": "getLicense", "orderId": "o", "productId": "p"}, codes.INVALID_PARAM, "businessId"),
        ({"activity": "newInstance"}, codes.INVALID_PARAM, "newInstance"),
    ],
)
def test_license_g1_refusals_are_signed_and_store_nothing(market, params, code, words):
    answer = signed(market.g1(params, path="/license"))
    assert answer["resultCode"] == code and words in answer["resultMsg"]
    assert market.count(License) == 0 and market.count(Answer) == 0


def test_wrong_token_and_unknown_path_are_signed_envelopes(market):
    assert signed(market.send("GET", "/license?" + WIRE.replace("b-0001", "b-0009")))["resultCode"] == codes.AUTH_FAILED
    assert signed(market.send("GET", "/license/nowhere"))["resultCode"] == codes.INVALID_PARAM
    assert signed(market.send("DELETE", "/license"))["resultCode"] == codes.INVALID_PARAM


# --- License-2.0 ----------------------------------------------------------------------------------


def test_license_2_lifecycle_and_async_license(market, runner):
    created = signed(market.g2(lic2_order(business="lic2-1"), path="/license"))
    assert created == {"resultCode": "000000", "resultMsg": "success.", "instanceId": "lic2-1"}
    assert market.rows(Instance)[0].generation == "LIC2"
    first = market.g2(async_request("lic2-1"), path="/license")
    again = market.g2(async_request("lic2-1"), path="/license")
    assert again.data == first.data
    payload = licensedoc.verify_document(public_key(runner), signed(first)["license"])
    assert (payload["fingerprint"], payload["effective"], payload["expires"]) == (
        "FP-AAAA",
        "2023-10-27T10:30:15Z",
        "2024-10-27T10:30:15Z",
    )
    other = signed(market.g2(async_request("lic2-1", fingerprint="FP-BBBB"), path="/license"))
    assert other["license"] != signed(first)["license"] and market.count(License) == 2
    assert market.count(Event, Event.kind == "license_issued") == 2
    renew = {
        "activity": "refreshInstance",
        "instanceId": "lic2-1",
        "orderId": "R1",
        "orderLineId": "R1-1",
        "scene": "RENEWAL",
        "expireTime": "20300101000000",
        "testFlag": "0",
    }
    assert signed(market.g2(renew, path="/license"))["resultCode"] == codes.SUCCESS
    active = market.rows(License, License.state == LicenseState.ACTIVE)
    assert sorted(row.fingerprint for row in active) == ["FP-AAAA", "FP-BBBB"]
    assert all(row.expire_time.year == 2030 for row in active)
    release = {"activity": "releaseInstance", "instanceId": "lic2-1", "testFlag": "0"}
    assert signed(market.g2(release, path="/license"))["resultCode"] == codes.SUCCESS
    assert market.count(License, License.state == LicenseState.RELEASED) == 2


@pytest.mark.parametrize(
    "change, code, words",
    [
        ({"instanceId": "nope"}, codes.INSTANCE_NOT_FOUND, "nope"),
        ({"eventId": None}, codes.INVALID_PARAM, "eventId"),
    ],
)
def test_get_license_async_refusals(market, change, code, words):
    signed(market.g2(lic2_order(business="lic2-2"), path="/license"))
    body = {k: v for k, v in {**async_request("lic2-2"), **change}.items() if v is not None}
    answer = signed(market.g2(body, path="/license"))
    assert answer["resultCode"] == code and words in answer["resultMsg"]
    assert market.count(License) == 0


def test_license_2_requires_the_g2_signature(market):
    answer = signed(market.g2(lic2_order(), key="not-the-key", path="/license"))
    assert answer["resultCode"] == codes.AUTH_FAILED and market.count(Instance) == 0


# --- the key and the generator ----------------------------------------------------------------------


def test_signing_key_is_private_stable_and_never_overwritten(app, runner):
    first = public_key(runner)
    path = app.config["LICENSE_SIGNING_KEY"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert public_key(runner) == first
    assert [name for name in os.listdir(os.path.dirname(path)) if name.endswith(".tmp")] == []


@pytest.mark.parametrize(
    "app_config", [{"LICENSE_GENERATOR": "tests.test_license:plain_generator", "KOO_G1_WINDOW_S": REFERENCE_WINDOW_S}]
)
def test_a_merchant_generator_makes_the_license_text(market):
    answer = signed(market.send("GET", "/license?" + WIRE))
    assert answer["license"] == "LIC-CS2301010000ABCDE-forever"
    assert market.rows(License)[0].document == "LIC-CS2301010000ABCDE-forever"
