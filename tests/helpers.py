"""What several test modules share: keys, order bodies, answer checks, the Marketplace that plays the
other side against the test client, and small local stand-ins (chat robots, a mailbox).

Fixtures live in conftest.py; live processes in live.py. A test module imports from these, never
from another test module (tests/test_imports.py checks it).
"""

import datetime
import email
import email.policy
import ipaddress
import json
import os
import re
import socket
import ssl
import threading
import time
import uuid
from contextlib import contextmanager
from html.parser import HTMLParser
from urllib.parse import urlencode

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from isvapp.background import notices, provisioning, worker
from isvapp.extensions import db
from isvapp.koo import codes
from isvapp.koo.signing import (
    g1_kit_signed_request,
    g1_signed_params,
    g2_signed_request,
    key_fingerprint,
    kit_signed_request,
    verify_body_sign,
)
from isvapp.storage.models import Callback, Job, JobState, StatusItem, utcnow
from isvapp.storage.schema import MIGRATIONS
from sqlalchemy import func, select, update
from werkzeug.wrappers import Request, Response

# --- keys, the database the suite runs on, and the marketplace played against the test client ---------


KEY = "a1b2c3d4-0000-1111-2222-333344445555"  # the reference's made-up key
KIT_KEY = "kit-0000-1111-2222-333344445555"
SERVER_URI = os.environ.get("ISVAPP_SQLALCHEMY_DATABASE_URI")
ON_POSTGRES = bool(SERVER_URI) and SERVER_URI.startswith("postgresql")


class Marketplace:
    """Plays the marketplace against the test client: signs, sends, and closes each answer.

    Closing matters: the callback log row is written when the answer is closed, as gunicorn does
    after sending it.
    """

    def __init__(self, app, client):
        self.app, self.client = app, client

    def send(self, method, url, **kwargs):
        response = self.client.open(url, method=method, **kwargs)
        response.close()
        return response

    def g2(self, body, key=KEY, path="/produce", **sign):
        raw, query = g2_signed_request(key, body, **sign)
        return self.send("POST", path, query_string=query, data=raw, content_type="application/json")

    def g1(self, params, key=KEY, path="/produce", **sign):
        """A G1 GET: parameters signed, then URL-encoded on the wire the way Java's URLEncoder does."""
        signed = g1_signed_params(key, params, **sign)
        return self.send("GET", path + "?" + urlencode(signed))

    def kit(self, name, body, key=KIT_KEY, **sign):
        """A G2 Kit POST to /produce/produceAPI/v2/<name>, x-sign headers and all."""
        raw, headers = kit_signed_request(key, body, **sign)
        return self.send("POST", f"/produce/produceAPI/v2/{name}", data=raw, headers=headers)

    def kit_g1(self, name, body, key=KIT_KEY, formula="body-hmac"):
        raw, headers = g1_kit_signed_request(key, body, formula)
        return self.send("POST", f"/produce/produceAPI/{name}", data=raw, headers=headers)

    def count(self, model, *where):
        with self.app.app_context():
            return db.session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()

    def rows(self, model, *where):
        with self.app.app_context():
            rows = db.session.execute(select(model).where(*where)).scalars().all()
            db.session.expunge_all()
            return rows


# --- G2 orders --------------------------------------------------------------------------------------


def new_order(order="CS2211181819B4LVS", line=None, business=None, test_flag="0"):
    return {
        "activity": "newInstance",
        "orderId": order,
        "orderLineId": line or f"{order}-000001",
        "businessId": business or str(uuid.uuid4()),
        "testFlag": test_flag,
    }


def result(response):
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert verify_body_sign(KEY, response.data, response.headers["Body-Sign"])
    return json.loads(response.data)


# --- G1 orders --------------------------------------------------------------------------------------


def g1_order(order="CS1906666666ABCDE", business=None, **extra):
    params = {
        "activity": "newInstance",
        "businessId": business or str(uuid.uuid4()),
        "customerId": "68cbc86abc2018ab880d92f36422fa0e",
        "customerName": "Zhang San 张三",
        "orderId": order,
        "productId": "00301-666666-0--0",
        "skuCode": "sku-1",
        "expireTime": "20300727153156",
        "periodType": "month",
        "periodNumber": "1",
        "testFlag": "1",
    }
    params.update(extra)
    return params


def signed_result(response):
    """Every G1 answer, errors included, is HTTP 200 with a Body-Sign over its exact bytes."""
    assert response.status_code == 200
    assert verify_body_sign(KEY, response.data, response.headers["Body-Sign"])
    return json.loads(response.data)


# --- Kit sync ---------------------------------------------------------------------------------------


TENANT = {
    "instanceId": "huaiweitest123456",
    "orderId": "CS1906666666ABCDE",
    "tenantId": "68cbc86abc2018ab880d92f36422fa0e",
    "tenantCode": "huawei",
    "name": "huaiweitest",
    "domainName": "https://example.tenantaccount.com",
    "flag": 1,
    "testFlag": 0,
}


SCOPE = {"instanceId": "huaiweitest123456", "tenantId": TENANT["tenantId"]}


def kit_ok(response, code=codes.SUCCESS):
    assert response.status_code == 200
    assert verify_body_sign(KIT_KEY, response.data, response.headers["Body-Sign"])
    answer = json.loads(response.data)
    assert answer["resultCode"] == code, answer
    return answer


def users(*names, **fields):
    return [
        {"userName": n, "name": n.title(), "orgCode": "d1", "role": "user", "enable": "true", **fields} for n in names
    ]


def auth(flag, user_list, **extra):
    return {
        **SCOPE,
        "appId": "app-1",
        "userList": user_list,
        "flag": flag,
        "testFlag": 0,
        "currentSyncTime": "20240101120000000",
        **extra,
    }


# --- answers and the callback log; a Seller Console debugging round ----------------------------------


def answer_of(response, key=KEY):
    assert response.status_code == 200
    assert verify_body_sign(key, response.data, response.headers["Body-Sign"])
    return json.loads(response.data)


def last_log(market, activity=None):
    rows = market.rows(Callback, *([Callback.activity == activity] if activity else []))
    return rows[-1]


def created(market, **order):
    return answer_of(market.g2(new_order(**order)))["instanceId"]


def refresh(iid, scene, expire="20301231235959", **extra):
    return {
        "activity": "refreshInstance",
        "instanceId": iid,
        "orderId": "R1",
        "orderLineId": "R1-1",
        "scene": scene,
        "expireTime": expire,
        **extra,
    }


def debug_round(market):
    order, line = "MOCKPERIODYEARNEW", "MOCKPERIODYEARNEW-000001"
    iid = answer_of(market.g2(new_order(order=order, line=line, test_flag="1")))["instanceId"]
    steps = [
        refresh(iid, "RENEWAL", testFlag="1", orderId="MOCKMONTYRENEW", orderLineId="MOCKMONTYRENEW-000001"),
        {"activity": "updateInstanceStatus", "instanceId": iid, "status": "FREEZE", "testFlag": "1"},
        {"activity": "updateInstanceStatus", "instanceId": iid, "status": "UNFREEZE", "testFlag": "1"},
        {
            "activity": "upgradeInstance",
            "instanceId": iid,
            "orderId": "MOCKMONTYCHANGE",
            "orderLineId": "MOCKMONTYCHANGE-000001",
            "testFlag": "1",
        },
        {"activity": "queryInstance", "instanceId": iid, "testFlag": "1"},
        {"activity": "releaseInstance", "instanceId": iid, "testFlag": "1"},
    ]
    return iid, [answer_of(market.g2(step))["resultCode"] for step in steps]


# --- the merchant's pages ---------------------------------------------------------------------------


PASSWORD = "correct horse battery"


def token(html):
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def log_in(client, name="boss", password=PASSWORD):
    page = client.get("/admin/login").get_data(as_text=True)
    return client.post("/admin/login", data={"name": name, "password": password, "csrf_token": token(page)})


def log_in_from(client, addr, name="boss", password=PASSWORD):
    page = client.get("/admin/login", environ_base={"REMOTE_ADDR": addr}).get_data(as_text=True)
    return client.post(
        "/admin/login",
        data={"name": name, "password": password, "csrf_token": token(page)},
        environ_base={"REMOTE_ADDR": addr},
    )


def make_token(admin_client, name="crm", scopes=("entitlements", "usage"), product_id="", key=None):
    """A token made on the page: for both scopes and this server's key unless told otherwise."""
    page = admin_client.get("/admin/api-tokens").get_data(as_text=True)
    key = key_fingerprint(KEY) if key is None and not product_id else key or ""
    form = {"name": name, "scope": list(scopes), "product_id": product_id, "key": key, "csrf_token": token(page)}
    made = admin_client.post("/admin/api-tokens", data=form)
    return re.search(r'<code id="new-token">([^<]+)</code>', made.get_data(as_text=True)).group(1)


class _Rows(HTMLParser):
    """Each table row's cells as text: markup inside a cell (its attributes, <code>, links)
    decides nothing."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.rows, self.row, self.cell = [], None, None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.row = []
        elif tag in ("td", "th") and self.row is not None:
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.row.append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.rows.append(self.row)
            self.row = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def table_row(html, first_cell):
    """The text of each cell of the one table row whose first cell reads ``first_cell``."""
    parser = _Rows()
    parser.feed(html)
    [row] = [row for row in parser.rows if row and row[0] == first_cell]
    return row


def row_state(html, scenario):
    row = re.search(rf'data-scenario="{scenario}">(.*?)</tr>', html, re.S).group(1)
    return re.search(r'class="badge[^"]*">([^<]+)<', row).group(1)


# --- licenses ---------------------------------------------------------------------------------------


# §3.2's second example exactly as it travels (Java URLEncoder), key a1b2c3d4-...
WIRE = (
    "activity=getLicense&businessId=b-0001&customerId=c-0001&customerName=Zhang+San+%E5%BC%A0%E4%B8%89"
    "&orderId=CS2301010000ABCDE&productId=00301-666666-0--0&saasExtendParams=W3sibmFtZSI6Im1hY2hpbmVD"
    "b2RlIiwidmFsdWUiOiJBQkNERUZHSElKS0xNTk9QUVJTVFVWV1gifV0%3D&testFlag=1&timeStamp=20230101080000123"
    "&authToken=NZNyzj44TLp4eqPZnvN6%2B5BRn2LVjoODyRZk2ToKozk%3D"
)


def signed(response):
    assert response.status_code == 200
    assert verify_body_sign(KEY, response.data, response.headers["Body-Sign"])
    return json.loads(response.data)


def lic2_order(order="CS2310270000LIC", business=None):
    return {
        "activity": "newInstance",
        "orderId": order,
        "orderLineId": f"{order}-000001",
        "businessId": business or str(uuid.uuid4()),
        "testFlag": "0",
    }


def async_request(instance_id, event="evt-1", fingerprint="FP-AAAA"):
    body = {
        "activity": "getLicenseAsync",
        "instanceId": instance_id,
        "effectiveTime": "2023-10-27 10:30:15 z",
        "expireTime": "2024-10-27 10:30:15 z",
        "eventId": event,
        "testFlag": "0",
    }
    if fingerprint:
        body["deviceFingerprint"] = fingerprint
    return body


# --- migrations -------------------------------------------------------------------------------------


def schema_differences():
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, db.metadata)


def head_revision(app):
    return ScriptDirectory(MIGRATIONS).get_current_head()


def current_revision():
    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


# --- background jobs and the fake marketplace's keys -----------------------------------------------


AK, SK = "fake-ak", "fake-sk"
RECORD_FILE = "ISVAPP_TEST_HOOK_LOG"


class Recorder(provisioning.Provisioner):
    """Appends every hook call to a file (shared by worker processes); sleeps on request."""

    def handle(self, event):
        path = os.environ[RECORD_FILE]
        with open(path, "a") as f:
            f.write(
                json.dumps({"event": event.event_id, "kind": event.kind, "pid": os.getpid(), "start": time.time()})
                + "\n"
            )
        time.sleep(float(os.environ.get("ISVAPP_TEST_HOOK_SLEEP", "0")))
        with open(path, "a") as f:
            f.write(json.dumps({"event": event.event_id, "done": True, "end": time.time()}) + "\n")


def run_until_idle(app, limit=200):
    with app.app_context():
        return worker.work(until_idle=True, max_jobs=limit)


def hook_calls(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# --- alert channels: the chat robots and a mailbox, served locally ---------------------------------


WECOM_KEY = "wecom-key-0123456789abcdef"
DING_TOKEN = "ding-token-0123456789abcdef"
DING_SECRET = "SECding0123456789abcdefsecret"
FEISHU_HOOK = "feishu-hook-0123456789abcdef"
FEISHU_SECRET = "feishu-secret-0123456789"


class Robots:
    """WeCom, DingTalk and Feishu on one local server: records each POST, answers from a script."""

    def __init__(self):
        self.received = {"wecom": [], "dingtalk": [], "feishu": []}
        self.script = {"wecom": [], "dingtalk": [], "feishu": []}  # answers to give before the ok one

    OK = {
        "wecom": {"errcode": 0, "errmsg": "ok"},
        "dingtalk": {"errcode": 0, "errmsg": "ok"},
        "feishu": {"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success"},
    }

    def __call__(self, environ, start_response):
        request = Request(environ)
        channel = request.path.strip("/").split("/")[0]
        self.received[channel].append(
            {
                "path": request.path,
                "args": request.args.to_dict(),
                "json": json.loads(request.get_data()),
                "content_type": request.content_type,
                "at": time.time(),
            }
        )
        answer = self.script[channel].pop(0) if self.script[channel] else self.OK[channel]
        if isinstance(answer, int):
            return Response("boom", answer)(environ, start_response)
        return Response(json.dumps(answer), 200, content_type="application/json")(environ, start_response)


def robot_config(robots):
    return {
        "ALERT_WECOM_URL": f"{robots.base}/wecom/cgi-bin/webhook/send?key={WECOM_KEY}",
        "ALERT_DINGTALK_URL": f"{robots.base}/dingtalk/robot/send?access_token={DING_TOKEN}",
        "ALERT_DINGTALK_SECRET": DING_SECRET,
        "ALERT_FEISHU_URL": f"{robots.base}/feishu/open-apis/bot/v2/hook/{FEISHU_HOOK}",
        "ALERT_FEISHU_SECRET": FEISHU_SECRET,
        "JOB_RETRY_BASE_S": 0,
    }


def live_alert_env(robots, mailbox, **extra):
    """A live server's environment: every robot, and e-mail to the local SMTP server."""
    env = {f"ISVAPP_{k}": str(v) for k, v in robot_config(robots).items()}
    env.update(
        ISVAPP_KOO_ACCESS_KEY=KEY,
        ISVAPP_ALERT_EMAIL_TO="merchant@example.com",
        ISVAPP_ALERT_SMTP_HOST="127.0.0.1",
        ISVAPP_ALERT_SMTP_PORT=str(mailbox.port),
        ISVAPP_ALERT_SMTP_TLS="none",
        ISVAPP_ALERT_SMTP_FROM="isvapp@example.com",
        ISVAPP_ALERT_LANGUAGE="en",  # the tests read the English texts (zh is the default)
    )
    return {**env, **{f"ISVAPP_{k}": str(v) for k, v in extra.items()}}


class Mailbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802  aiosmtpd's hook name
        self.messages.append(
            (
                envelope.mail_from,
                list(envelope.rcpt_tos),
                email.message_from_bytes(envelope.content, policy=email.policy.default),
            )
        )
        return "250 OK"


# --- the import layers -----------------------------------------------------------------------------

# The layers of docs/architecture.md, top first: a module may import its own layer's modules and
# any layer below, never one above. The top-level modules that are not the factory sit with the
# layer their role puts them in.
LAYERS = [
    ("the factory and its commands", {"isvapp", "isvapp.cli", "isvapp.provisioning", "isvapp.backups"}),
    (
        "the routes",
        {
            "isvapp.produce",
            "isvapp.dashboard",
            "isvapp.login",
            "isvapp.productapi",
            "isvapp.health",
            "isvapp.monitoring",
        },
    ),
    ("the domain", {"isvapp.domain"}),
    ("background work", {"isvapp.background"}),
    ("the stand-ins", {"isvapp.standins"}),
    ("the other side of the wire", {"isvapp.market"}),
    ("storage", {"isvapp.storage"}),
    (
        "the base",
        {
            "isvapp.koo",
            "isvapp.config",
            "isvapp.settings",
            "isvapp.extensions",
            "isvapp.outbound",
            "isvapp.inbound",
            "isvapp.selfcheck",
            "isvapp.archive",
            "isvapp.texts",
            "isvapp.metrics",
            "isvapp.logs",
            "isvapp.errorreports",
            "isvapp.privatefiles",
            "isvapp.throttle",
        },
    ),
]


# --- metrics, and a WSGI app served on loopback ----------------------------------------------------


def close_notice_windows(engine, counted_upto):
    """Once the notices' cursor has passed event ``counted_upto`` (every order of the window is
    counted), let the held notices go now instead of at the window's end: what the clock does a
    minute later. Holding itself is tested in-process (test_payperuse.py); this spares a live test
    its wait. True when the cursor got there within a minute."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            value = conn.execute(select(StatusItem.value).where(StatusItem.name == notices.CURSOR)).scalar()
        if int((value or {}).get("event") or 0) >= counted_upto:
            with engine.begin() as conn:
                conn.execute(
                    update(Job).where(Job.kind == "alert", Job.state == JobState.QUEUED).values(run_after=utcnow())
                )
            return True
        time.sleep(0.5)
    return False


def parse_metrics(text):
    """A /metrics page read by prometheus-client's own parser: {(sample name, labels): value},
    the labels as a sorted tuple of pairs."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metric(samples, name, **labels):
    """One sample's value in parse_metrics' result, 0 when it is not there (nothing counted yet)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(client):
    """GET /metrics through the test client (from this host, so without a token), parsed."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.data
    return parse_metrics(response.get_data(as_text=True))


def tagged_order(tag):
    """A G2 newInstance body for a new order (test data: testFlag 1), its ids made from ``tag``."""
    order = f"{tag}{uuid.uuid4().hex[:10]}"
    return {
        "activity": "newInstance",
        "orderId": order,
        "orderLineId": f"{order}-1",
        "businessId": uuid.uuid4().hex,
        "testFlag": "1",
    }


@contextmanager
def serving(wsgi_app, host="127.0.0.1", tls=None):
    """A WSGI app (a robot, a stand-in for Sentry) served on loopback (or ``host``; over https with
    the server context ``tls``) while the block runs: its base URL."""
    from werkzeug.serving import make_server

    server = make_server(host, 0, wsgi_app, threaded=True, ssl_context=tls)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://{host}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def self_signed_tls(tmp_path):
    """A server's TLS context for 127.0.0.1 with a certificate nobody vouches for (written in ``tmp_path``)."""
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
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
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


def other_local_address():
    """An IPv4 address of this host that is not a loopback one (the one its default route leaves
    from), or None. A UDP socket's connect sends nothing: it only picks the source address."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never reached
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if ipaddress.ip_address(address).is_loopback or address == "0.0.0.0" else address


@contextmanager
def localhost_resolving_to(monkeypatch, address):
    """The name localhost resolved to ``address``, as a hosts file or resolver pointed elsewhere
    would: only that name, only in this process, while the block runs."""
    resolve = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        return resolve(address if host == "localhost" else host, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", getaddrinfo)
        yield
