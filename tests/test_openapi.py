"""The open-API client keeps the AK/SK to the marketplace it was given: no redirect is followed (the
signed Authorization would go with it, and the other host's answer be trusted as order data),
plain http only to this host, and certificates are verified."""

import datetime
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from isvapp.config import load_settings
from isvapp.market import openapi

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
                data = json.dumps(body).encode()
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


def settings_for(base_url):
    return load_settings(
        {
            "KOO_API_BASE_URL": base_url,
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


def _self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


@pytest.mark.live
def test_a_certificate_nobody_vouches_for_is_refused(tmp_path):
    with Receiver(tls=_self_signed(tmp_path)) as market:
        with pytest.raises(openapi.MarketError, match="CERTIFICATE_VERIFY_FAILED") as error:
            openapi.query_order(settings_for(market.url), "CS1")
    assert error.value.code == "network"
