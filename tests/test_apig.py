"""The AK/SK signer against Huawei's official one, and the usage-push signature vector (§3.8)."""

from datetime import UTC, datetime

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from isvapp.koo import apig

pytestmark = pytest.mark.any_database  # pure: APIG signing against the official signer

AK, SK = "QTWAOYTTINDUT2QVKYUC", "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"
WHEN = datetime(2026, 11, 24, 6, 0, 0, tzinfo=UTC)


def official(method, host, path, query, headers, body):
    request = SdkRequest(
        method=method,
        schema="https",
        host=host,
        resource_path=path,
        query_params=list(query),
        header_params=dict(headers),
        body=body,
    )
    return Signer(BasicCredentials(AK, SK)).sign(request).header_params["Authorization"]


@pytest.mark.parametrize(
    "method, path, query, body",
    [
        (
            "GET",
            "/api/mkp-openapi-public/global/v1/order/query",
            [("orderId", "CS2207261447AUY4H"), ("orderLineId", "CS2207261447AUY4H-000001")],
            b"",
        ),
        ("GET", "/api/mkp-openapi-public/global/v1/order/query", [("orderId", "MOCK PERIOD/年")], b""),
        ("POST", "/api/mkp-openapi-public/global/v1/isv/usage-data", [], b'{"usage_records":[]}'),
    ],
)
def test_authorization_matches_the_official_signer(method, path, query, body):
    host = "mkt.myhuaweicloud.com"
    headers = {
        "Content-Type": "application/json;charset=UTF-8",
        "X-Sdk-Date": WHEN.strftime(apig.DATE_FORMAT),
        "Host": host,
    }
    from urllib.parse import quote, urlencode

    url = f"https://{host}{path}" + ("?" + urlencode(query, quote_via=quote) if query else "")
    ours = apig.sign(AK, SK, method, url, headers, body)["Authorization"]
    assert ours == official(method, host, path, query, headers, body or None)
    assert apig.verify(AK, SK, method, url, {**headers, "Authorization": ours}, body)
    assert not apig.verify(AK, SK + "x", method, url, {**headers, "Authorization": ours}, body)


def test_usage_signature_vector():
    body = (
        '{"usage_records":[{"begin_time":"20220809T080000Z","end_time":"20220809T090000Z",'
        '"instance_id":"7f141bf1","metering_sn":"sn-0001","record_time":"20220809T091000Z","usage_value":"99"}]}'
    )
    assert (
        apig.usage_signature("a1b2c3d4-0000-1111-2222-333344445555", "1660036200000", "abc123", body)
        == "QMpozclU07fYRIqCJNwtnnF1HF63pRnEIxwu/Rsv/tg="
    )
    records = [
        {
            "usage_value": "99",
            "metering_sn": "sn-0001",
            "instance_id": "7f141bf1",
            "record_time": "20220809T091000Z",
            "end_time": "20220809T090000Z",
            "begin_time": "20220809T080000Z",
        }
    ]
    assert apig.usage_body(records).decode() == body
