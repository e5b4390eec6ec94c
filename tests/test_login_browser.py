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
from isvapp.standins.fakeidp import create_fake_idp
from isvapp.standins.serving import Running
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
    audience, lifetime, one use), says whom it let in, and offers isvapp's Sign out as a link,
    as docs/handoff.md suggests. Served by ``Running``."""
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
        return (
            f"<html><body><h1 id='welcome'>Welcome {escape(found['user']['userName'])}</h1>"
            f"<a id='signout' href='{issuer}/logout'>Sign out</a></body></html>"
        )

    return app


def tenant_rows(prefix, code, idp_url, users, handoff_url=None):
    """A tenant whose IdP is the fake one, its app, its users and a live instance, as the Kit
    sync and newInstance store them. ``users``: {userName: enabled}."""
    instance, tenant, app = f"INST-{prefix}", f"T-{prefix}", f"APP-{prefix}"
    return [
        Instance(
            instance_id=instance,
            generation="G2",
            order_id=f"CS{prefix}",
            product_id="00301-666666-0--0",
            sku_code="sku-b",
            expire_time=datetime.utcnow() + timedelta(days=30),
        ),
        Tenant(instance_key=instance, tenant_id=tenant, tenant_code=code, name=f"{code} Co", domain_name=idp_url),
        KitApp(
            instance_key=instance,
            tenant_id=tenant,
            app_id=app,
            client_id=CLIENT_ID,
            client_secret_sealed=vault.seal(LIVE_SECRET_KEY, CLIENT_SECRET),
            handoff_url=handoff_url,
        ),
        *[
            KitUser(
                instance_key=instance,
                tenant_id=tenant,
                app_id=app,
                user_name=name,
                name=IDP_USERS[name]["name"],
                role=IDP_USERS[name]["role"],
                org_code="10000",
                enable=enabled,
            )
            for name, enabled in users.items()
        ],
    ]


IDP_USERS = {
    "zhangsan": {"name": "张三", "tenant": "T-B", "organizationCode": "10000", "role": "admin"},
    "lisi": {"name": "李四", "tenant": "T-B", "organizationCode": "10000", "role": "user"},
    "wangwu": {"name": "王五", "tenant": "T-P", "organizationCode": "10000", "role": "user"},
}


@live_fixture(scope="module")
def world(tmp_path_factory):
    """A real gunicorn that allows the fake IdP on this host, two tenants: ``browser``, whose app
    hands off to a local receiver, and ``plain``, whose app has no hand-off URL (its users land
    on isvapp's signed-in page)."""
    folder = tmp_path_factory.mktemp("login-browser")
    server = LiveServer(folder, workers=2, env={"ISVAPP_LOGIN_ALLOW_LOOPBACK_IDP": "true"})
    clients = {CLIENT_ID: {"secret": CLIENT_SECRET, "redirect_uris": [server.url + "/login/callback"]}}
    receiver = SimpleNamespace(claims=[], refused=[])
    with (
        Running(create_fake_idp(clients, IDP_USERS)) as idp,
        Running(receiver_app(server.url, "APP-B", receiver.claims, receiver.refused)) as running,
    ):
        receiver.url = running.url + "/sso"
        server.flask("init-db")
        engine = server.engine()
        with Session(engine) as session:
            session.add_all(tenant_rows("B", "browser", idp.url, {"zhangsan": True, "lisi": False}, receiver.url))
            session.add_all(tenant_rows("P", "plain", idp.url, {"wangwu": True}))
            session.commit()
        engine.dispose()
        with server:
            yield server, receiver, idp


class Watched:
    """A browser context whose pages report every console message and page error: a Content
    Security Policy violation is a console message, and the button it blocks does nothing."""

    def __init__(self, browser, locale):
        self.context, self.messages = browser.new_context(locale=locale), []

    def page(self):
        page = self.context.new_page()
        page.on("console", lambda m: self.messages.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.messages.append(f"pageerror: {e}"))
        return page

    def violations(self):
        return [m for m in self.messages if "Content Security Policy" in m or "pageerror" in m]


def sign_in_at_idp(page, user):
    page.wait_for_selector("input[name=userName]", timeout=30000)
    page.fill("input[name=userName]", user)
    page.fill("input[name=password]", "fake-password")
    page.click("button[type=submit]")
    page.wait_for_url(lambda u: "/oauth2/" not in u, timeout=30000)  # back from the IdP
    page.wait_for_load_state("load")


def choose(page, server_url, lang, tenant_code):
    """The chooser, as a buyer meets it: type the enterprise's code, click Continue."""
    page.goto(f"{server_url}/login?lang={lang}")
    page.fill("#tenant", tenant_code)
    page.click("button[type=submit]")


LANGUAGES = [
    ("en", "en-US", "en", "Your account is disabled for this product.", "You have signed out."),
    ("zh", "zh-CN", "zh-CN", "您的账号已被停用，不能使用本产品。", "您已退出登录。"),
]


@pytest.mark.parametrize("lang, locale, html_lang, refused_text, signed_out_text", LANGUAGES)
def test_a_buyer_clicks_from_the_chooser_to_the_product_and_signs_out_again(
    world, lang, locale, html_lang, refused_text, signed_out_text
):
    server, receiver, idp = world
    before = len(receiver.claims)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        watched = Watched(browser, locale)
        page = watched.page()
        choose(page, server.url, lang, "browser")
        sign_in_at_idp(page, "zhangsan")
        page.wait_for_selector("#welcome", timeout=30000)
        assert page.inner_text("#welcome") == "Welcome zhangsan" and page.url == receiver.url
        page.click("#signout")  # the product's link: isvapp asks first
        page.wait_for_selector("form[action='/logout'] button", timeout=30000)
        assert page.evaluate("document.documentElement.lang") == html_lang
        page.click("form[action='/logout'] button")
        page.wait_for_url(f"{server.url}/login/logged-out", timeout=30000)
        assert signed_out_text in page.inner_text("main")
        # the IdP's session ended too: the chooser now leads to its form, not straight back in
        choose(page, server.url, lang, "browser")
        page.wait_for_selector("input[name=userName]", timeout=30000)
        browser.close()
    assert not watched.violations(), watched.messages
    claims = receiver.claims[before:]
    assert [c["user"]["userName"] for c in claims] == ["zhangsan"] and not receiver.refused
    assert claims[0]["tenant"]["id"] == "T-B" and claims[0]["instance"]["id"] == "INST-B"
    assert claims[0]["user"]["role"] == "admin" and json.dumps(claims[0], ensure_ascii=False).count("张三") == 1


@pytest.mark.parametrize("lang, locale, html_lang, refused_text, signed_out_text", LANGUAGES)
def test_a_buyer_without_a_hand_off_signs_out_from_isvapps_own_page(
    world, lang, locale, html_lang, refused_text, signed_out_text
):
    server, _, _ = world
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        watched = Watched(browser, locale)
        page = watched.page()
        choose(page, server.url, lang, "plain")
        sign_in_at_idp(page, "wangwu")
        page.wait_for_selector("form[action='/logout'] button", timeout=30000)
        assert "王五" in page.inner_text("main")
        page.click("form[action='/logout'] button")
        page.wait_for_url(f"{server.url}/login/logged-out", timeout=30000)
        assert signed_out_text in page.inner_text("main")
        browser.close()
    assert not watched.violations(), watched.messages


@pytest.mark.parametrize("lang, locale, html_lang, refused_text, signed_out_text", LANGUAGES)
def test_a_refused_buyer_signs_in_as_someone_else(world, lang, locale, html_lang, refused_text, signed_out_text):
    server, receiver, _ = world
    before = len(receiver.claims)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        watched = Watched(browser, locale)
        page = watched.page()
        choose(page, server.url, lang, "browser")
        sign_in_at_idp(page, "lisi")
        assert page.evaluate("document.documentElement.lang") == html_lang
        assert refused_text in page.inner_text("main")
        page.click("#switch")  # ends the IdP's session, and starts this login again
        sign_in_at_idp(page, "zhangsan")  # the IdP asked again: lisi was not signed straight back in
        page.wait_for_selector("#welcome", timeout=30000)
        browser.close()
    assert not watched.violations(), watched.messages
    assert [c["user"]["userName"] for c in receiver.claims[before:]] == ["zhangsan"]
