"""Every example request on Huawei's public pages, verbatim, replayed through a real gunicorn.

The pages' own signatures are made with Huawei's example key, so each body (or G1 parameter set)
is sent exactly as printed and signed here with this server's key: what is tested is that the
shape the marketplace documents is answered 000000. Sources are in docs/protocol.md.
"""

import json
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
from isvapp.koo import codes
from isvapp.koo.signing import g1_kit_signed_request, g1_signed_params, g2_signed_request, verify_body_sign

from .helpers import KEY, KIT_KEY
from .live import LiveServer
from .tiers import live_fixture

# the pages' examples answered as printed: the callbacks' database work runs on both databases in process
pytestmark = pytest.mark.any_database

EXAMPLE_INSTANCE = "10e758d0-31ad-4c4b-8f1b-81d03469a10e"

# V2 (POST /produce) bodies, verbatim, in the order a debugging round would send them.
# newInstance: intl topic_0070649092 (its example is cut off after the URL; the reference's body).
V2_BODIES = [
    (
        "newInstance (topic_0070649092)",
        '{"activity":"newInstance","businessId":"' + EXAMPLE_INSTANCE + '","orderId":"CS2211181819B4LVS",'
        '"orderLineId":"CS2211181819B4LVS-000001","testFlag":"0"}',
    ),
    (
        "queryInstance (topic_0070649093)",
        '{"activity":"queryInstance","instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","testFlag":"0"}',
    ),
    (
        "updateInstanceStatus (topic_0070649095)",
        '{"activity":"updateInstanceStatus","instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","status":"FREEZE",'
        '"testFlag":"1"}',
    ),
    (
        "upgradeInstance (topic_0070649097)",
        '{"activity":"upgradeInstance","instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","orderId":"CS2211181819B4LVS",'
        '"orderLineId":"CS2211181819B4LVS-000001","testFlag":"0"}',
    ),
    (
        "changeInstanceCheck (en-us_topic_0000002464934193, its example body as printed)",
        '{"activity":"upgradeInstance","instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","orderId":"CS2211181819B4LVS",'
        '"orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}',
    ),
    (
        "releaseInstance (topic_0070649096)",
        '{"activity":"releaseInstance","instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","orderId":"CS2211181819B4LVS",'
        '"orderLineId":"CS2211181819B4LVS-000001","testFlag":"0"}',
    ),
]

# G1 (GET /produce) example URLs, verbatim: en-us_topic_0070649069 and topic_0070649081.
G1_URLS = [
    "https://example.isv.com?activity=instanceStatus&instanceId=huaweitest123456&instanceStatus=FREEZE&testFlag=1"
    "&timeStamp=20230327070251713&authToken=pqlrW7%2BPHC%2F1JE%2BMEjKxC94GGJreoS6PZHd982auw2o%3D",
    "https://example.isv.com?activity=instanceStatus&instanceId=huaweitest123456&instanceStatus=NORMAL&testFlag=1"
    "&timeStamp=20230327070251713&authToken=pqlrW7%2BPHC%2F1JE%2BMEjKxC94GGJreoS6PZHd982auw2o%3D",
    "https://example.isv.com?activity=queryInstance&instanceId=ebc28eb6-4606-4098-b4bd-c201c99a0654%2C"
    "fe28e27e-1157-4105-8592-24cc9488db10%2C92df74e4-163e-4e0b-a206-d9800d33881b&testFlag=1"
    "&timeStamp=20230327065233980&authToken=Eh%2F3Ud%2BR1j3d%2FwOui5CAcvRipM8IuribvgkXfJAsTfE%3D",
]

# Kit examples: G1 tenantSync (its trailing comma removed: the page's JSON does not parse as printed),
# and the allOrgSync orgInfo string.
KIT_G1 = [
    (
        "tenantSync",
        {
            "instanceId": "huaiweitest123456",
            "orderId": "CS1906666666ABCDE",
            "tenantId": "68cbc86abc2018ab880d92f36422fa0e",
            "tenantCode": "huawei",
            "name": "huaiweitest",
            "domainName": "https://example.tenantaccount.com",
            "flag": 1,
            "testFlag": 0,
            "timeStamp": "20220413093539534",
        },
    ),
    (
        "allOrgSync",
        {
            "instanceId": "huaiweitest123456",
            "tenantId": "68cbc86abc2018ab880d92f36422fa0e",
            "orgInfo": '[{"orgCode":"00000001", "name":"产品部","parentCode":"265789314"},'
            '{"orgCode":"00000002", "name":"测试部","parentCode":"265789314"}]',
            "testFlag": 0,
            "timeStamp": "20220420114117642",
        },
    ),
]


@live_fixture(scope="module")
def server(tmp_path_factory):
    env = {
        "ISVAPP_KOO_ACCESS_KEY": KEY,
        "ISVAPP_KOO_KIT_ACCESS_KEY": KIT_KEY,
        "ISVAPP_KOO_G1_WINDOW_S": str(10 * 365 * 86400),
    }  # the G1 and Kit examples were signed in 2022-2023
    with LiveServer(tmp_path_factory.mktemp("pages"), workers=2, env=env) as live:
        yield live


def answered(response, key=KEY):
    assert response.status_code == 200
    assert verify_body_sign(key, response.content, response.headers["Body-Sign"])
    return json.loads(response.content)


def test_v2_examples_verbatim(server):
    for name, body in V2_BODIES:
        raw, query = g2_signed_request(KEY, body.encode("utf-8"))
        response = requests.post(
            server.url + "/produce",
            params=query,
            data=raw,
            timeout=10,
            headers={"Accept": "application/json", "Content-Type": "application/json;charset=utf8"},
        )
        answer = answered(response)
        assert answer["resultCode"] == codes.SUCCESS, (name, answer)
        if name.startswith("newInstance"):
            assert answer["instanceId"] == EXAMPLE_INSTANCE
        if name.startswith("queryInstance"):
            assert answer["info"][0]["instanceId"] == EXAMPLE_INSTANCE


def test_g1_examples_verbatim(server):
    created = requests.get(
        server.url
        + "/produce?"
        + urlencode(
            g1_signed_params(
                KEY,
                {
                    "activity": "newInstance",
                    "businessId": "huaweitest123456",
                    "orderId": "CS1906666666ABCDE",
                    "customerId": "68cbc86abc2018ab880d92f36422fa0e",
                    "productId": "00301-666666-0--0",
                    "chargingMode": "1",
                    "expireTime": "20301231235959",
                    "testFlag": "1",
                },
            )
        ),
        timeout=10,
    )
    assert answered(created)["instanceId"] == "huaweitest123456"
    for url in G1_URLS:
        params = dict(parse_qsl(urlsplit(url).query))
        stamp = params.pop("timeStamp")
        del params["authToken"]
        signed = g1_signed_params(KEY, params, timestamp=stamp)
        answer = answered(requests.get(server.url + "/produce?" + urlencode(signed), timeout=10))
        assert answer["resultCode"] == codes.SUCCESS, (url, answer)  # the query's ids are debugging ids


def test_kit_examples_verbatim(server):
    for name, body in KIT_G1:
        raw, headers = g1_kit_signed_request(KIT_KEY, body)
        answer = answered(
            requests.post(f"{server.url}/produce/produceAPI/{name}", data=raw, headers=headers, timeout=10), KIT_KEY
        )
        assert answer["resultCode"] == codes.SUCCESS, (name, answer)
