"""The buyer's whole login in Debian's Chromium, in English and in Chinese: from the login URL,
through the fake IdP's form, to a local receiver standing in for the merchant's product, which
verifies the assertion as docs/handoff.md says. Real gunicorn, everything on 127.0.0.1."""

import json
import shutil
from datetime import datetime, timedelta
from types import SimpleNamespace

import jwt
import pytest
from flask import Flask, request
from isvapp.market.fake import Running
from isvapp.market.fakeidp import create_fake_idp
from isvapp.storage import vault
from isvapp.storage.models import Instance, KitApp, KitUser, Tenant
from markupsafe import escape
from playwright.sync_api import sync_playwright
from sqlalchemy.orm import Session

from .live import LIVE_SECRET_KEY, LiveServer
from .tiers import live_fixture

pytestmark = pytest.mark.any_database  # the login in Chromium: its database work runs on both databases in test_login

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CLIENT_ID, CLIENT_SECRET = "browser-client", "browser-client-secret"


def receiver_app(issuer, audience, claims, refused):
    """The merchant's product: takes the form POST, verifies the assertion (key set, issuer,
    audience, lifetime, one use), and says whom it let in. Served by ``Running``."""
    app, keys, seen = Flask("receiver"), jwt.PyJWKClient(issuer + "/.well-known/jwks.json"), set()

    @app.post("/sso")
    def sso():
        token = request.form.get("assertion", "")
        try:
            found = jwt.decode(
                token,
                keys.get_signing_key_from_jwt(token).key,
                algorithms=["EdDSA"],
                audience=audience,
                issuer=issuer,
                leeway=10,
                options={"require": ["exp", "iat", "jti", "sub"]},
            )
            if found["jti"] in seen:
                raise jwt.InvalidTokenError("replayed")
            seen.add(found["jti"])
        except jwt.PyJWTError as error:
            refused.append(str(error))
            return "", 401
        claims.append(found)
        return f"<html><body><h1 id='welcome'>Welcome {escape(found['user']['userName'])}</h1></body></html>"

    return app


@live_fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("login-browser")
    server = LiveServer(folder, workers=2)
    users = {
        "zhangsan": {"name": "张三", "tenant": "T-B", "organizationCode": "10000", "role": "admin"},
        "lisi": {"name": "李四", "tenant": "T-B", "organizationCode": "10000", "role": "user"},
    }
    clients = {CLIENT_ID: {"secret": CLIENT_SECRET, "redirect_uris": [server.url + "/login/callback"]}}
    receiver = SimpleNamespace(claims=[], refused=[])
    with (
        Running(create_fake_idp(clients, users)) as idp,
        Running(receiver_app(server.url, "APP-B", receiver.claims, receiver.refused)) as running,
    ):
        receiver.url = running.url + "/sso"
        server.env["ISVAPP_LOGIN_HANDOFF_URL"] = receiver.url
        server.flask("init-db")
        engine = server.engine()
        with Session(engine) as session:
            session.add_all(
                [
                    Instance(
                        instance_id="INST-B",
                        generation="G2",
                        order_id="CSB",
                        product_id="00301-666666-0--0",
                        sku_code="sku-b",
                        expire_time=datetime.utcnow() + timedelta(days=30),
                    ),
                    Tenant(
                        instance_key="INST-B",
                        tenant_id="T-B",
                        tenant_code="browser",
                        name="Browser Co",
                        domain_name=idp.url,
                    ),
                    KitApp(
                        instance_key="INST-B",
                        tenant_id="T-B",
                        app_id="APP-B",
                        client_id=CLIENT_ID,
                        client_secret_sealed=vault.seal(LIVE_SECRET_KEY, CLIENT_SECRET),
                    ),
                    KitUser(
                        instance_key="INST-B",
                        tenant_id="T-B",
                        app_id="APP-B",
                        user_name="zhangsan",
                        name="张三",
                        role="admin",
                        org_code="10000",
                        enable=True,
                    ),
                    KitUser(
                        instance_key="INST-B",
                        tenant_id="T-B",
                        app_id="APP-B",
                        user_name="lisi",
                        name="李四",
                        role="user",
                        org_code="10000",
                        enable=False,
                    ),
                ]
            )
            session.commit()
        engine.dispose()
        with server:
            yield server, receiver


def walk_login(context, url, user):
    page = context.new_page()
    page.goto(url)
    assert page.locator("input[name=userName]").count() == 1, (page.url, page.inner_text("body")[:500])
    page.fill("input[name=userName]", user)
    page.fill("input[name=password]", "fake-password")
    page.click("button[type=submit]")
    page.wait_for_url(lambda u: "/oauth2/" not in u, timeout=30000)  # back from the IdP
    page.wait_for_load_state("load")
    return page


@pytest.mark.parametrize(
    "lang, locale, welcome_lang, refused_text",
    [
        ("en", "en-US", "en", "Your account is disabled for this product."),
        ("zh", "zh-CN", "zh-CN", "您的账号已被停用，不能使用本产品。"),
    ],
)
def test_a_buyer_logs_in_through_the_idp_and_lands_in_the_product_and_a_disabled_one_is_told_why(
    world, lang, locale, welcome_lang, refused_text
):
    server, receiver = world
    before = len(receiver.claims)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(locale=locale)
        errors = []
        page = walk_login(context, f"{server.url}/login/browser?lang={lang}", "zhangsan")
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.wait_for_selector("#welcome", timeout=30000)
        assert page.inner_text("#welcome") == "Welcome zhangsan" and page.url == receiver.url
        # another browser (this one's IdP session would sign zhangsan in again at once)
        refused = walk_login(browser.new_context(locale=locale), f"{server.url}/login/browser?lang={lang}", "lisi")
        assert refused.evaluate("document.documentElement.lang") == welcome_lang
        assert refused_text in refused.inner_text("main")
        browser.close()
    assert not errors and not receiver.refused
    claims = receiver.claims[before:]
    assert [c["user"]["userName"] for c in claims] == ["zhangsan"]
    assert claims[0]["tenant"]["id"] == "T-B" and claims[0]["instance"]["id"] == "INST-B"
    assert claims[0]["user"]["role"] == "admin" and json.dumps(claims[0], ensure_ascii=False).count("张三") == 1
