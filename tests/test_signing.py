"""The reference's test vectors (§3.2-§3.6, §3.8), verbatim, and the verifier's refusals."""

from datetime import UTC, datetime

import pytest
from isvapp.koo import codes
from isvapp.koo.codes import KooError
from isvapp.koo.signing import (
    body_sign,
    canonical_payload,
    g1_auth_token,
    g1_string_to_sign,
    g2_signature,
    key_fingerprint,
    kit_signature,
    replay_token,
    string_map_payload,
    verify_body_sign,
    verify_g1_request,
    verify_g2_request,
    verify_kit_request,
)

pytestmark = pytest.mark.any_database  # pure: signatures on the reference's vectors

KEY = "a1b2c3d4-0000-1111-2222-333344445555"
G2_PAYLOAD = (
    '{"activity":"newInstance","businessId":"8a2c4e6f-405a-4f8d-8e24-f41090522646",'
    '"orderId":"CS2210101920BWXLK","orderLineId":"CS2210101920BWXLK-000001","testFlag":"1"}'
)
G2_SIGNATURE = "d3c706e9f391300db0669c6a356f217b8f8c903cc80633ade44edf501d0b1b24"
KIT_SIGNATURE = "007e03be2f15be97b588b83f3e92b6a9bf555cddc5cd71f15073beb5bdb783c8"
TS, NONCE = "1716363778801", "RLLUammMSInlrNWb"
KEYS = (KEY,)
DAY_S = 24 * 3600


def g1_now(stamp):
    """Unix ms of a G1 timeStamp (UTC), so a test runs at the moment the request was signed."""
    return int(datetime.strptime(stamp[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC).timestamp() * 1000)


def test_g1_auth_token_vector():
    params = dict(
        activity="newInstance",
        businessId="61e834ba-7b97-4418-b8f7-e5345137278c",
        customerId="68cbc86abc2018ab880d92f36422fa0e",
        expireTime="20200727153156",
        orderId="CS1906666666ABCDE",
        productId="00301-666666-0--0",
        testFlag="1",
        timeStamp="20200727073711903",
    )
    assert g1_string_to_sign(params) == (
        "activity=newInstance&businessId=61e834ba-7b97-4418-b8f7-e5345137278c&customerId=68cbc86abc2018ab880d92f36422fa0e"
        "&expireTime=20200727153156&orderId=CS1906666666ABCDE&productId=00301-666666-0--0&testFlag=1&timeStamp=20200727073711903"
    )
    assert g1_auth_token(KEY, params) == "YvPkS9iUPIKU/4E88rIyaOK/iQCMp/39LgKiSc4sW0s="


def test_g1_auth_token_vector_with_encoding_and_extension_params():
    params = dict(
        activity="getLicense",
        businessId="b-0001",
        customerId="c-0001",
        customerName="Zhang San 张三",
        orderId="CS2301010000ABCDE",
        productId="00301-666666-0--0",
        saasExtendParams="W3sibmFtZSI6Im1hY2hpbmVDb2RlIiwidmFsdWUiOiJBQkNERUZHSElKS0xNTk9QUVJTVFVWV1gifV0=",
        testFlag="1",
        timeStamp="20230101080000123",
    )
    token = "NZNyzj44TLp4eqPZnvN6+5BRn2LVjoODyRZk2ToKozk="
    assert g1_auth_token(KEY, params) == token
    now = g1_now(params["timeStamp"])
    assert verify_g1_request(("other-key", KEY), {**params, "authToken": token}, now, DAY_S) == KEY
    # The FAQ pitfall: '+' turned into a space on the way.
    verify_g1_request(KEYS, {**params, "authToken": token.replace("+", " ")}, now, DAY_S)


@pytest.mark.parametrize(
    "change, code",
    [
        ({"authToken": None}, codes.AUTH_FAILED),
        ({"authToken": "YvPkS9iUPIKU/4E88rIyaOK/iQCMp/39LgKiSc4sW0s="}, codes.AUTH_FAILED),
        ({"customerName": "Zhang San"}, codes.AUTH_FAILED),
        ({"timeStamp": None}, codes.INVALID_PARAM),
    ],
)
def test_g1_refusals(change, code):
    params = dict(activity="getLicense", customerName="Zhang San 张三", timeStamp="20230101080000123")
    params["authToken"] = g1_auth_token(KEY, params)
    params.update(change)
    with pytest.raises(KooError) as error:
        verify_g1_request(KEYS, {k: v for k, v in params.items() if v is not None}, g1_now("20230101080000123"), DAY_S)
    assert error.value.code == code


def test_g2_signature_vector():
    assert g2_signature(KEY, NONCE, TS, G2_PAYLOAD) == G2_SIGNATURE


def test_kit_signature_vector():
    assert kit_signature(KEY, NONCE, TS, G2_PAYLOAD) == KIT_SIGNATURE


def test_body_sign_vector():
    body = b'{"resultCode":"000000","resultMsg":"success.","instanceId":"61e834ba-7b97-4418-b8f7-e5345137278c"}'
    header = body_sign(KEY, body)
    assert header == 'sign_type="HMAC-SHA256", signature="CZ/5mokbs2x5xf8V2cdUKLhIbeSspyn9jx4cgJbS2tQ="'
    assert verify_body_sign(KEY, body, header)
    assert verify_body_sign(KEY, body, header.replace('", signature="', '", signature= "').replace('= "', '="'))
    assert not verify_body_sign(KEY, body + b" ", header)
    assert not verify_body_sign(KEY, body, header.replace('"HMAC-SHA256"', "HMAC-SHA256"))


def test_canonical_payload_sorts_top_level_drops_nulls_keeps_nested_order():
    assert canonical_payload({"b": "2", "a": {"z": 1, "y": "中"}, "c": None}) == '{"a":{"z":1,"y":"中"},"b":"2"}'


def test_g2_verifies_raw_then_canonical_case_insensitively():
    now = int(TS)
    verify_g2_request(KEYS, G2_PAYLOAD.encode(), G2_SIGNATURE.upper(), TS, NONCE, now)
    pretty = (
        b'{ "testFlag": "1", "orderLineId": "CS2210101920BWXLK-000001", "orderId": "CS2210101920BWXLK",'
        b' "businessId": "8a2c4e6f-405a-4f8d-8e24-f41090522646", "activity": "newInstance", "x": null }'
    )
    verify_g2_request(KEYS, pretty, G2_SIGNATURE, TS, NONCE, now)


@pytest.mark.parametrize(
    "signature, timestamp, nonce, now_offset, code, words",
    [
        (None, TS, NONCE, 0, codes.AUTH_FAILED, "signature is missing"),
        ("00" * 32, TS, NONCE, 0, codes.AUTH_FAILED, "does not match"),
        (G2_SIGNATURE, None, NONCE, 0, codes.INVALID_PARAM, "timestamp is missing"),
        (G2_SIGNATURE, "17163637788O1", NONCE, 0, codes.INVALID_PARAM, "milliseconds"),
        (G2_SIGNATURE, TS, None, 0, codes.INVALID_PARAM, "nonce is missing"),
        (G2_SIGNATURE, TS, NONCE, 61_000, codes.INVALID_PARAM, "window"),
        (G2_SIGNATURE, TS, NONCE, -61_000, codes.INVALID_PARAM, "window"),
    ],
)
def test_g2_refusals(signature, timestamp, nonce, now_offset, code, words):
    with pytest.raises(KooError) as error:
        verify_g2_request(KEYS, G2_PAYLOAD.encode(), signature, timestamp, nonce, int(TS) + now_offset)
    assert error.value.code == code
    assert words in error.value.message


def test_g2_window_edges_are_inclusive():
    verify_g2_request(KEYS, G2_PAYLOAD.encode(), G2_SIGNATURE, TS, NONCE, int(TS) + 60_000)
    verify_g2_request(KEYS, G2_PAYLOAD.encode(), G2_SIGNATURE, TS, NONCE, int(TS) - 60_000)


def test_kit_verification_and_refusal():
    verify_kit_request(KEYS, G2_PAYLOAD.encode(), KIT_SIGNATURE, TS, NONCE, int(TS))
    with pytest.raises(KooError) as error:
        verify_kit_request(KEYS, G2_PAYLOAD.encode(), G2_SIGNATURE, TS, NONCE, int(TS))
    assert error.value.code == codes.AUTH_FAILED and "x-sign" in error.value.message


def test_g1_signed_in_2020_is_refused_outside_the_window():
    params = dict(activity="instanceStatus", instanceId="i-1", instanceStatus="FREEZE", timeStamp="20200727073711903")
    params["authToken"] = g1_auth_token(KEY, params)
    verify_g1_request(KEYS, params, g1_now("20200727073711903") + 3 * 3600 * 1000, DAY_S)  # marketplace retries
    with pytest.raises(KooError) as error:
        verify_g1_request(KEYS, params, g1_now("20261125000000000"), DAY_S)
    assert error.value.code == codes.INVALID_PARAM and "window" in error.value.message


def test_g1_resplit_parameters_are_refused_but_a_plain_ampersand_is_not():
    signed = dict(activity="newInstance", orderId="O", periodNumber="1", timeStamp="20230101080000123")
    token = g1_auth_token(KEY, signed)
    resplit = {
        "activity": "newInstance",
        "orderId": "O&periodNumber=1",
        "timeStamp": "20230101080000123",
        "authToken": token,
    }
    assert g1_auth_token(KEY, resplit) == token  # the attack: the same signed string
    with pytest.raises(KooError) as error:
        verify_g1_request(KEYS, resplit, g1_now("20230101080000123"), DAY_S)
    assert error.value.code == codes.AUTH_FAILED and "orderId" in error.value.message
    company = dict(activity="newInstance", customerName="A&B 有限公司", timeStamp="20230101080000123")
    company["authToken"] = g1_auth_token(KEY, company)
    assert verify_g1_request(KEYS, company, g1_now("20230101080000123"), DAY_S) == KEY


def test_g2_verifies_with_any_of_several_keys_and_says_which():
    key, form = verify_g2_request(("rotated-out", KEY), G2_PAYLOAD.encode(), G2_SIGNATURE, TS, NONCE, int(TS))
    assert (key, form) == (KEY, "raw")
    assert key_fingerprint(KEY).startswith("sha256:") and KEY not in key_fingerprint(KEY)


def test_g2_string_map_form_signs_numbers_as_strings():
    """Huawei's V2 sample reads the body as Map<String,String>: 1 and true are signed as "1" and "true"."""
    sent = b'{"activity":"newInstance","orderId":"O1","orderLineId":"L1","businessId":"B1","testFlag":1,"x":true}'
    as_java_signs = string_map_payload(
        {"activity": "newInstance", "orderId": "O1", "orderLineId": "L1", "businessId": "B1", "testFlag": 1, "x": True}
    )
    assert as_java_signs == (
        '{"activity":"newInstance","businessId":"B1","orderId":"O1","orderLineId":"L1","testFlag":"1","x":"true"}'
    )
    signature = g2_signature(KEY, NONCE, TS, as_java_signs)
    assert verify_g2_request(KEYS, sent, signature, TS, NONCE, int(TS)) == (KEY, "string-map")


@pytest.mark.parametrize("timestamp", ["0" + TS, "²" * 13, TS + " ", "+" + TS, "１７１６３６３７７８８０１"])
def test_g2_timestamp_must_be_plain_unix_milliseconds(timestamp):
    with pytest.raises(KooError) as error:
        verify_g2_request(KEYS, G2_PAYLOAD.encode(), G2_SIGNATURE, timestamp, NONCE, int(TS))
    assert error.value.code == codes.INVALID_PARAM and "milliseconds" in error.value.message


def test_recut_nonce_and_timestamp_share_one_replay_identity():
    """key + nonce + timestamp has no separator: a re-cut of the same signed bytes is the same request."""
    assert replay_token("g2", "abc0", "1716363778801") == replay_token("g2", "abc", "01716363778801")
    assert replay_token("g2", "abc0", "1716363778801") != replay_token("kit", "abc0", "1716363778801")
