"""The open-API client keeps the AK/SK to the marketplace it was given: no redirect is followed (the
signed Authorization would go with it, and the other host's answer be trusted as order data),
plain http only to this host, and certificates are verified."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from isvapp.market import openapi
from isvapp.settings import load as load_settings

from .helpers import self_signed_tls

pytestmark = pytest.mark.any_database  # the open API client against local receivers

ORDER = {
    "resultCode": "MKT.0000",
    "resultMsg": "success",
    "orderInfo": {"orderId": "FORGED", "buyerInfo": {"customerId": "attacker"}},
}


class Receiver:
    """A loopback HTTP(S) server that answers every request with (status, headers, body) and
    records what it was sent."""

    def __init__(self, status=200, headers=None, body=ORDER, tls=None):
        self.seen = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                receiver.seen.append({"path": self.path, "authorization": self.headers.get("Authorization")})
                data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def settings_for(base_url, backup_url=""):
    return load_settings(
        {
            "KOO_API_BASE_URL": base_url,
            "KOO_API_BACKUP_URL": backup_url,
            "KOO_AK": "AK-TEST-0001",
            "KOO_SK": "sk-test-secret",
            "KOO_ACCESS_KEY": "k",
            "SECRET_KEY": "x" * 40,
        }
    )


@pytest.mark.live
@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_followed_and_the_ak_stays_home(status):
    with Receiver() as elsewhere, Receiver(status, {"Location": elsewhere.url + "/steal"}) as market:
        with pytest.raises(openapi.MarketError, match="redirect, not followed"):
            openapi.query_order(settings_for(market.url), "CS1")
    assert len(market.seen) == 1 and "AK-TEST-0001" in market.seen[0]["authorization"]
    assert elsewhere.seen == []  # neither the request nor the signed Authorization went there


@pytest.mark.live
def test_the_answer_of_a_good_market_is_read():
    with Receiver() as market:
        assert openapi.query_order(settings_for(market.url), "CS1")["orderId"] == "FORGED"


def test_plain_http_is_refused_except_to_this_host():
    with pytest.raises(openapi.MarketError, match="must be an https:// URL") as error:
        openapi.query_order(settings_for("http://mkt.myhuaweicloud.com"), "CS1")
    assert error.value.code == "config"


@pytest.mark.live
def test_a_certificate_nobody_vouches_for_is_refused(tmp_path):
    with Receiver(tls=self_signed_tls(tmp_path)) as market:
        with pytest.raises(openapi.MarketError, match="CERTIFICATE_VERIFY_FAILED") as error:
            openapi.query_order(settings_for(market.url), "CS1")
    assert error.value.code == "network"


# --- the order query's error page (云商店-查询订单:错误码): its rows, verbatim -------------------------------
# https://huaweicloud.com/guide/productsdesc-bms_0dff4d8a9ede975f6674698a8064dbbesupport0 lists
# MKT.0999, MKT.0100 and MKT.9001-9004 under HTTP status 500 (docs/protocol.md §13.1, §13.2).

PAGE_500_ROWS = [
    ("MKT.0999", "System internal error."),
    ("MKT.0100", "Failure of input parameter"),
    ("MKT.9001", "Instance ID not found."),
    ("MKT.9002", "Invalid usage enties."),
    ("MKT.9003", "Usage records extends size limit."),
    ("MKT.9004", "Record beginTime extends Limit."),
]


@pytest.mark.live
@pytest.mark.parametrize("code, message", PAGE_500_ROWS)
def test_a_5xx_that_carries_a_result_code_is_the_marketplaces_answer_and_is_never_sent_to_the_backup(code, message):
    with Receiver() as backup, Receiver(500, body={"resultCode": code, "resultMsg": message}) as main:
        with pytest.raises(openapi.MarketError) as error:
            openapi.query_order(settings_for(main.url, backup.url), "CS1")
    assert error.value.code == code and not error.value.elsewhere and error.value.status == 500
    assert len(main.seen) == 1 and backup.seen == []


@pytest.mark.live
@pytest.mark.parametrize(
    "status, body",
    [
        (502, b"<html><body>502 Bad Gateway</body></html>"),
        (503, {"message": "Service Unavailable"}),  # JSON, but no result code: not the marketplace's word
        (500, b""),
    ],
)
def test_no_answer_from_the_marketplace_goes_to_the_backup(status, body):
    with Receiver() as backup, Receiver(status, body=body) as main:
        assert openapi.query_order(settings_for(main.url, backup.url), "CS1")["orderId"] == "FORGED"
    assert len(main.seen) == 1 and len(backup.seen) == 1


@pytest.mark.live
def test_the_failures_result_msg_and_extra_info_are_kept_as_sent_beside_isvapps_reading():
    """The page: resultMsg carries the failure's detail beyond the field description, to be read
    with extra_info (sent for MKT.0100, 0150, 0250, 9001, 9002, 9004, 9005) to find the problem."""
    sent = {
        "resultCode": "MKT.0100",
        "resultMsg": "Failure of input parameter. orderId: 订单号格式错误",
        "extra_info": {"orderId": "CS1", "reason": "length"},
    }
    with Receiver(500, body=sent) as main:
        with pytest.raises(openapi.MarketError) as error:
            openapi.query_order(settings_for(main.url), "CS1")
    text = str(error.value)
    assert text.startswith("MKT.0100: " + openapi.MKT_MESSAGES["MKT.0100"])
    assert "Failure of input parameter. orderId: 订单号格式错误" in text
    assert '{"orderId": "CS1", "reason": "length"}' in text
    assert (error.value.result_msg, error.value.extra_info) == (sent["resultMsg"], sent["extra_info"])
