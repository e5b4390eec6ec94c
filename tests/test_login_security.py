"""The buyer's login and the entitlement API attacked through a real gunicorn (issue 33, points 2
to 4): a copied cookie after logout, a logout link on another site, a tenant of two products, and
a tenant whose IdP address leads isvapp to this host."""

import re
import socket
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
import requests
from isvapp import create_app
from isvapp.domain import apitokens
from isvapp.koo.signing import key_fingerprint
from isvapp.standins.fakeidp import create_fake_idp
from isvapp.standins.serving import Running
from isvapp.storage import vault
from isvapp.storage.models import Instance, InstanceState, KitApp, KitUser, Tenant, TokenScope
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .helpers import KEY
from .live import LIVE_SECRET_KEY, LiveServer, free_port, stop_process

pytestmark = pytest.mark.live  # every test here starts a server, a process or a browser

CLIENT_ID, CLIENT_SECRET = "sec-client", "sec-client-secret"
USERS = {"zhangsan": {"name": "张三", "tenant": "T-S", "organizationCode": "10000", "role": "user"}}
# The two-product tenant's user (the IdP says which tenant a user belongs to).
USERS["lisi"] = {"name": "李四", "tenant": "T-P", "organizationCode": "10000", "role": "user"}


def instance(instance_id, product_id, days=30, state=InstanceState.ACTIVE):
    return Instance(
        instance_id=instance_id,
        generation="G2",
        order_id=f"CS-{instance_id}",
        product_id=product_id,
        sku_code="sku",
        state=state,
        expire_time=datetime.utcnow() + timedelta(days=days),
    )


def synced(instance_id, app_id, domain_name, tenant="T-S", code="sec", user="zhangsan"):
    """What tenantSync, applicationSync and authSync store for ``tenant`` under ``instance_id``."""
    return [
        Tenant(instance_key=instance_id, tenant_id=tenant, tenant_code=code, name="Sec Co", domain_name=domain_name),
        KitApp(
            instance_key=instance_id,
            tenant_id=tenant,
            app_id=app_id,
            client_id=CLIENT_ID,
            client_secret_sealed=vault.seal(LIVE_SECRET_KEY, CLIENT_SECRET),
        ),
        KitUser(instance_key=instance_id, tenant_id=tenant, app_id=app_id, user_name=user, name="张三", enable=True),
    ]


def store(server, rows):
    engine = server.engine()
    with Session(engine) as session:
        session.add_all(rows)
        session.commit()
    engine.dispose()


def walk(browser, start_url, user="zhangsan"):
    """A buyer's browser from the login URL to the page isvapp answers after the IdP's form."""
    leave = browser.get(start_url, allow_redirects=False, timeout=30)
    assert leave.status_code == 302, leave.text[:300]
    form = browser.get(leave.headers["Location"], timeout=30)
    assert form.status_code == 200, form.text[:300]
    fields = dict(re.findall(r"name='([^']+)' value='([^']*)'", form.text))
    back = browser.post(
        leave.headers["Location"].split("?")[0],
        data={**fields, "userName": user, "password": "fake-password"},
        allow_redirects=False,
        timeout=30,
    )
    assert back.status_code == 302, back.text[:300]
    return browser.get(back.headers["Location"], allow_redirects=False, timeout=30)


def handed_off_instance(page):
    """The instance the hand-off's assertion names (its signature is tested elsewhere)."""
    assertion = re.search(r'name="assertion" value="([^"]+)"', page.text).group(1)
    return jwt.decode(assertion, options={"verify_signature": False})["instance"]["id"]


def reason_of(page):
    found = re.search(r'data-reason="([a-z_]+)"', page.text)
    return found.group(1) if found else None


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A real gunicorn that allows the fake IdP on this host, and that IdP. Each test stores a
    tenant of its own (a code and ids no other test uses), so they share the server in any order."""
    server = LiveServer(
        tmp_path_factory.mktemp("login-security"),
        env={"ISVAPP_LOGIN_ALLOW_LOOPBACK_IDP": "true", "ISVAPP_LOGIN_HANDOFF_URL": "https://product.example.com/sso"},
    )
    server.flask("init-db")
    clients = {CLIENT_ID: {"secret": CLIENT_SECRET, "redirect_uris": [server.url + "/login/callback"]}}
    with Running(create_fake_idp(clients, USERS)) as idp, server:
        yield server, idp


# --- point 3: logout ends the session on the server ---------------------------------------------


def test_a_copy_of_the_buyers_cookie_is_worthless_after_logout(stack):
    server, idp = stack
    store(server, [instance("INST-C", "p-1"), *synced("INST-C", "APP-C", idp.url, "T-S", "copy")])
    browser = requests.Session()
    assert walk(browser, f"{server.url}/login/copy").status_code == 200
    copy = browser.cookies.get("isvapp_buyer")
    thief = requests.Session()
    thief.cookies.set("isvapp_buyer", copy, domain="127.0.0.1", path="/")
    assert thief.get(f"{server.url}/login/refresh", timeout=30).status_code == 200  # a live session refreshes
    confirm = browser.get(f"{server.url}/logout", timeout=30)
    token = re.search(r'name="token" value="([0-9a-f]+)"', confirm.text).group(1)
    out = browser.post(f"{server.url}/logout", data={"token": token}, allow_redirects=False, timeout=30)
    assert out.status_code == 303 and out.headers["Location"].startswith(idp.url + "/api/v1/logout")
    after = thief.get(f"{server.url}/login/refresh", allow_redirects=False, timeout=30)
    assert after.status_code == 401 and reason_of(after) == "session_ended"
    assert 'name="assertion"' not in after.text


def test_a_logout_link_or_form_on_another_site_signs_nobody_out(stack):
    server, idp = stack
    store(server, [instance("INST-L", "p-1"), *synced("INST-L", "APP-L", idp.url, "T-S", "link")])
    browser = requests.Session()
    assert walk(browser, f"{server.url}/login/link").status_code == 200
    shown = browser.get(f"{server.url}/logout", allow_redirects=False, timeout=30)  # a link: only the button
    assert shown.status_code == 200 and 'method="post"' in shown.text
    forged = browser.post(f"{server.url}/logout", data={"token": "0" * 64}, allow_redirects=False, timeout=30)
    assert forged.status_code == 400
    assert browser.get(f"{server.url}/login/refresh", timeout=30).status_code == 200  # still signed in


# --- point 2: one answer per product ----------------------------------------------------------


def test_the_entitlement_and_the_login_answer_for_the_product_asked_about(stack):
    """Tenant T-S bought product A (expired now) and product B (live); each product's app logs in."""
    server, idp = stack
    store(
        server,
        [
            instance("INST-A", "product-a", days=-1, state=InstanceState.EXPIRED),
            *synced("INST-A", "APP-A", idp.url, "T-P", "two", "lisi"),
            instance("INST-B", "product-b"),
            *synced("INST-B", "APP-B", idp.url, "T-P", "two", "lisi"),
        ],
    )
    app = create_app(
        {
            "SECRET_KEY": LIVE_SECRET_KEY,
            "SQLALCHEMY_DATABASE_URI": server.database_uri,
            "INSTANCE_PATH": str(server.instance_path),
        }
    )
    fingerprint = key_fingerprint("a key of this server")
    with app.app_context():
        for_key = apitokens.create_token(
            "crm", [TokenScope.ENTITLEMENTS], key_fingerprint=fingerprint, keys=[fingerprint]
        )
        for_a = apitokens.create_token("crm-a", [TokenScope.ENTITLEMENTS], product_id="product-a")
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {for_key}"
    a = api.get(f"{server.url}/api/v1/entitlements/tenants/T-P?productId=product-a", timeout=30).json()
    assert a["live"] is False and a["reason"] == "instance_expired" and a["instance"]["id"] == "INST-A"
    assert [i["id"] for i in a["instances"]] == ["INST-A"]
    b = api.get(f"{server.url}/api/v1/entitlements/tenants/T-P?productId=product-b", timeout=30).json()
    assert b["live"] is True and b["instance"]["id"] == "INST-B"
    unnamed = api.get(f"{server.url}/api/v1/entitlements/tenants/T-P", timeout=30)
    assert unnamed.status_code == 400 and "productId" in unnamed.json()["message"]
    # a token made for product A answers for A, and to it B's instance does not exist
    api.headers["Authorization"] = f"Bearer {for_a}"
    own = api.get(f"{server.url}/api/v1/entitlements/tenants/T-P", timeout=30).json()
    assert (
        own["productId"] == "product-a" and own["live"] is False and [i["id"] for i in own["instances"]] == ["INST-A"]
    )
    assert api.get(f"{server.url}/api/v1/entitlements/tenants/T-P?productId=product-b", timeout=30).status_code == 403
    assert api.get(f"{server.url}/api/v1/entitlements/instances/INST-B", timeout=30).status_code == 404
    assert api.get(f"{server.url}/api/v1/entitlements/instances/INST-A", timeout=30).json()["live"] is False
    refused = walk(requests.Session(), f"{server.url}/login/two?app=APP-A", "lisi")
    assert refused.status_code == 403 and reason_of(refused) == "instance_expired"
    admitted = walk(requests.Session(), f"{server.url}/login/two?app=APP-B", "lisi")
    assert admitted.status_code == 200 and handed_off_instance(admitted) == "INST-B"


def test_a_subscription_renewed_as_a_new_instance_logs_in_to_the_live_one(stack):
    """The same app synced under the old (expired) and the new instance: the live one admits."""
    server, idp = stack
    store(
        server,
        [
            instance("INST-OLD", "product-a", days=-1, state=InstanceState.EXPIRED),
            *synced("INST-OLD", "APP-R", idp.url, "T-S", "renewed"),
            instance("INST-NEW", "product-a"),
            *synced("INST-NEW", "APP-R", idp.url, "T-S", "renewed"),
        ],
    )
    admitted = walk(requests.Session(), f"{server.url}/login/renewed")
    assert admitted.status_code == 200 and handed_off_instance(admitted) == "INST-NEW"


# --- point 4: the tenant's IdP address ----------------------------------------------------------


class Listener:
    """Anything on this host that the tenant's domainName could point at: records what it gets."""

    def __init__(self):
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                seen.append((self.path, self.rfile.read(int(self.headers.get("Content-Length") or 0))))
                self.send_response(400)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"error":"probe","error_description":"port 6379 is open"}')

            do_GET = do_POST  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture(scope="module")
def default_server(tmp_path_factory):
    """A real gunicorn on default settings (LOGIN_ALLOW_LOOPBACK_IDP off), and a listener on this host."""
    listener = Listener()
    server = LiveServer(tmp_path_factory.mktemp("login-default"))
    server.flask("init-db")
    try:
        with server:
            yield server, listener
    finally:
        listener.close()


@pytest.mark.parametrize(
    "n, domain_name",
    list(
        enumerate(
            [
                "http://127.0.0.1:{port}",
                "127.0.0.1:{port}",
                "https://127.0.0.1:{port}",
                "http://localhost:{port}",
                "https://10.1.2.3",
                "https://[::1]:{port}",
                "https://169.254.169.254",
            ]
        )
    ),
)
def test_a_tenant_whose_idp_is_this_host_or_an_address_is_refused_by_default(default_server, n, domain_name):
    server, listener = default_server
    idp_url = domain_name.format(port=listener.port)
    store(server, [instance(f"INST-D{n}", "p-1"), *synced(f"INST-D{n}", "APP-D", idp_url, f"T-D{n}", f"d{n}")])
    page = requests.get(f"{server.url}/login/d{n}", allow_redirects=False, timeout=30)
    assert page.status_code == 502 and reason_of(page) == "idp_not_allowed"
    assert str(listener.port) not in page.text and "127.0.0.1" not in page.text  # generic words only
    assert listener.seen == []


# --- issue 32 point 3: a tenant to try the login with ------------------------------------------


def test_one_command_leaves_a_tenant_whose_users_log_in_through_fake_idp(tmp_path):
    """README: `isvapp kit-keygen`, the server started, `isvapp fake-idp-tenant`, `isvapp fake-idp`,
    then /login/demo: alice comes in, carol (disabled) is refused. Run twice, it changes nothing."""
    idp_port = free_port()
    server = LiveServer(tmp_path, env={"ISVAPP_KOO_ACCESS_KEY": KEY, "ISVAPP_LOGIN_ALLOW_LOOPBACK_IDP": "true"})
    # fake-idp registers LOGIN_REDIRECT_URI (default: run.sh's http://127.0.0.1:8000/login/callback)
    server.env["ISVAPP_LOGIN_REDIRECT_URI"] = server.url + "/login/callback"
    server.flask("init-db")
    server.flask("kit-keygen")
    with server:
        for _ in range(2):
            made = server.flask("fake-idp-tenant", server.url, "--idp-port", str(idp_port))
            assert "FAIL" not in made.stdout and f"{server.url}/login/demo" in made.stdout
        idp = server.flask_popen("fake-idp", "--port", str(idp_port))
        try:
            wait_until_listening(idp_port)
            assert walk(requests.Session(), f"{server.url}/login/demo", "alice").status_code == 200
            refused = walk(requests.Session(), f"{server.url}/login/demo", "carol")
            assert refused.status_code == 403 and reason_of(refused) == "user_disabled"
        finally:
            stop_process(idp)
        engine = server.engine()
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(Tenant)).scalar_one() == 1
            assert conn.execute(select(func.count()).select_from(KitUser)).scalar_one() == 3
        engine.dispose()


def wait_until_listening(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on {port} after {timeout} s")
