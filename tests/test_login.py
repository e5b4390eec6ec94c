"""The buyer's login: isvapp (Flask test client) against the fake IdP served on 127.0.0.1, the
tenant, app, user and instance stored as the Kit sync and newInstance would store them."""

import re
import time
import urllib.parse
from dataclasses import replace
from datetime import datetime, timedelta

import jwt
import pytest
import requests
from isvapp.extensions import db
from isvapp.settings import load as load_settings
from isvapp.standins.fakeidp import create_fake_idp
from isvapp.standins.serving import Running
from isvapp.storage import vault
from isvapp.storage.models import Instance, InstanceState, KitApp, KitUser, SignedRequest, Tenant

from .helpers import metric, scrape
from .tiers import live_fixture

SECRET = "test-secret"  # the app fixture's SECRET_KEY
CLIENT_ID, CLIENT_SECRET = "client-0001", "client-secret-0001"
CALLBACK = "http://localhost/login/callback"
HANDOFF = "https://app.example.com/sso"


@live_fixture
def idp():
    users = {
        "zhangsan": {"name": "张三", "tenant": "T-0001", "organizationCode": "10000", "role": "user"},
        "lisi": {"name": "李四", "tenant": "T-0001", "organizationCode": "10000", "role": "user"},
        "outsider": {"name": "Outsider", "tenant": "T-9999", "organizationCode": "1", "role": "user"},
    }
    with Running(
        create_fake_idp({CLIENT_ID: {"secret": CLIENT_SECRET, "redirect_uris": [CALLBACK]}}, users)
    ) as running:
        yield running


@pytest.fixture
def app_config():
    return {"LOGIN_HANDOFF_URL": HANDOFF, "LOGIN_REDIRECT_URI": CALLBACK, "LOGIN_ALLOW_LOOPBACK_IDP": True}


@pytest.fixture
def tenant(app, idp):
    """A tenant whose IdP is the fake one, its app, two users (lisi disabled) and a live instance."""
    with app.app_context():
        db.session.add_all(
            [
                Instance(
                    instance_id="INST-0001",
                    generation="G2",
                    order_id="CS0001",
                    product_id="00301-666666-0--0",
                    sku_code="sku-1",
                    expire_time=datetime.utcnow() + timedelta(days=30),
                ),
                Tenant(
                    instance_key="INST-0001", tenant_id="T-0001", tenant_code="acme", name="Acme", domain_name=idp.url
                ),
                KitApp(
                    instance_key="INST-0001",
                    tenant_id="T-0001",
                    app_id="APP-1",
                    name="App",
                    client_id=CLIENT_ID,
                    client_secret_sealed=vault.seal(SECRET, CLIENT_SECRET),
                ),
                KitUser(
                    instance_key="INST-0001",
                    tenant_id="T-0001",
                    app_id="APP-1",
                    user_name="zhangsan",
                    name="张三",
                    role="user",
                    org_code="10000",
                    enable=True,
                ),
                KitUser(
                    instance_key="INST-0001",
                    tenant_id="T-0001",
                    app_id="APP-1",
                    user_name="lisi",
                    name="李四",
                    role="user",
                    org_code="10000",
                    enable=False,
                ),
            ]
        )
        db.session.commit()
    return "acme"


def at_idp(location, user="zhangsan", password="fake-password"):
    """The browser at the IdP: the login form, submitted; the IdP's redirect back."""
    session = requests.Session()
    form_page = session.get(location, allow_redirects=False, timeout=10)
    assert form_page.status_code == 200, form_page.text
    fields = dict(re.findall(r"name='([^']+)' value='([^']*)'", form_page.text))
    fields.update(userName=user, password=password)
    back = session.post(location.split("?")[0], data=fields, allow_redirects=False, timeout=10)
    assert back.status_code == 302, back.text
    return back.headers["Location"]


def callback_path(location):
    assert location.startswith(CALLBACK + "?"), location
    return location[len("http://localhost") :]


def log_in(client, tenant_ref="acme", user="zhangsan"):
    start = client.get(f"/login/{tenant_ref}")
    assert start.status_code == 302, start.data
    return client.get(callback_path(at_idp(start.headers["Location"], user)))


def assertion_of(response):
    return re.search(r'name="assertion" value="([^"]+)"', response.get_data(as_text=True)).group(1)


def verify(client, token, audience="APP-1"):
    key = jwt.PyJWK(client.get("/.well-known/jwks.json").get_json()["keys"][0])
    return jwt.decode(
        token,
        key,
        algorithms=["EdDSA"],
        audience=audience,
        issuer="http://localhost",
        options={"require": ["exp", "iat", "jti", "sub"]},
    )


def test_the_login_goes_to_the_tenants_idp_with_state_and_pkce(client, tenant, idp):
    start = client.get("/login/acme")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(start.headers["Location"]).query)
    assert start.headers["Location"].startswith(idp.url + "/api/v1/oauth2/authorize?")
    assert {k: v[0] for k, v in query.items() if k not in ("state", "code_challenge")} == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": CALLBACK,
        "scope": "get_user_info",
        "code_challenge_method": "S256",
    }
    assert re.fullmatch(r"[A-Za-z0-9]{48}", query["state"][0])  # letters and digits, as the pages ask
    cookie = start.headers["Set-Cookie"]
    assert "isvapp_login=" in cookie and "HttpOnly" in cookie and "Path=/login" in cookie


def test_a_login_hands_a_verifiable_short_lived_assertion_to_the_product(client, app, tenant):
    before = metric(scrape(client), "isvapp_buyer_logins_total", outcome="admitted")
    page = log_in(client)
    assert page.status_code == 200, page.data
    assert metric(scrape(client), "isvapp_buyer_logins_total", outcome="admitted") == before + 1
    html = page.get_data(as_text=True)
    assert (
        f'action="{HANDOFF}"' in html
        and "form-action https://app.example.com" in page.headers["Content-Security-Policy"]
    )
    claims = verify(client, assertion_of(page))
    assert claims["exp"] - claims["iat"] <= 60 and claims["sub"] == "T-0001/zhangsan"
    assert claims["user"] == {"userName": "zhangsan", "name": "张三", "role": "user", "organizationCode": "10000"}
    assert claims["tenant"] == {"id": "T-0001", "code": "acme", "name": "Acme"}
    assert claims["instance"]["id"] == "INST-0001" and claims["instance"]["state"] == "ACTIVE"
    assert claims["instance"]["productId"] == "00301-666666-0--0" and claims["instance"]["skuCode"] == "sku-1"
    with app.app_context():
        assert db.session.get(KitUser, 1).last_login_at is not None


@pytest.mark.parametrize("user, reason", [("lisi", "user_disabled"), ("outsider", "tenant_mismatch")])
def test_someone_who_may_not_come_in_gets_a_page_saying_why_and_nothing_is_stored(client, app, tenant, user, reason):
    before = scrape(client)
    page = log_in(client, user=user)
    for outcome, counted in ((reason, 1), ("admitted", 0)):
        assert metric(scrape(client), "isvapp_buyer_logins_total", outcome=outcome) == counted + metric(
            before, "isvapp_buyer_logins_total", outcome=outcome
        )
    assert page.status_code == 403 and f'data-reason="{reason}"' in page.get_data(as_text=True)
    assert "assertion" not in page.get_data(as_text=True)
    with app.app_context():
        assert db.session.query(SignedRequest).count() == 0
        assert all(u.last_login_at is None for u in db.session.query(KitUser))


@pytest.mark.parametrize(
    "state, reason",
    [
        (InstanceState.FROZEN, "instance_frozen"),
        (InstanceState.EXPIRED, "instance_expired"),
        (InstanceState.RELEASED, "instance_released"),
    ],
)
def test_a_tenant_whose_instance_is_not_live_cannot_come_in(client, app, tenant, state, reason):
    with app.app_context():
        db.session.query(Instance).update({"state": state})
        db.session.commit()
    page = log_in(client)
    assert page.status_code == 403 and f'data-reason="{reason}"' in page.get_data(as_text=True)


def test_an_instance_past_its_expiry_is_expired_even_before_the_marketplace_says_so(client, app, tenant):
    with app.app_context():
        db.session.query(Instance).update({"expire_time": datetime.utcnow() - timedelta(minutes=1)})
        db.session.commit()
    assert 'data-reason="instance_expired"' in log_in(client).get_data(as_text=True)


def test_the_chinese_page_says_why_in_chinese(client, tenant):
    start = client.get("/login/acme?lang=zh")
    page = client.get(callback_path(at_idp(start.headers["Location"], "lisi")))
    assert "您的账号已被停用" in page.get_data(as_text=True)


def test_a_state_that_does_not_match_the_browsers_is_refused(client, tenant):
    start = client.get("/login/acme")
    location = at_idp(start.headers["Location"])
    forged = re.sub(r"state=[A-Za-z0-9]+", "state=forged", location)
    page = client.get(callback_path(forged))
    assert page.status_code == 400 and 'data-reason="bad_state"' in page.get_data(as_text=True)


def test_a_callback_without_the_browsers_cookie_is_refused(client, app, tenant):
    start = client.get("/login/acme")
    location = at_idp(start.headers["Location"])
    other_browser = app.test_client()
    page = other_browser.get(callback_path(location))
    assert page.status_code == 400 and 'data-reason="no_login"' in page.get_data(as_text=True)


def test_the_same_state_cannot_finish_a_second_login(client, tenant):
    start = client.get("/login/acme")
    cookie = client.get_cookie("isvapp_login", path="/login").value
    first = client.get(callback_path(at_idp(start.headers["Location"])))
    assert first.status_code == 200
    # a copy of the cookie, and a fresh code for the same state from the IdP's session
    client.set_cookie("isvapp_login", cookie, path="/login")
    again = client.get(callback_path(at_idp(start.headers["Location"])))
    assert again.status_code == 400 and 'data-reason="state_used"' in again.get_data(as_text=True)


def shown_and_logged(page, reason, caplog, logged):
    """The visitor sees the reason's generic words; the details are in the merchant's log only."""
    text = page.get_data(as_text=True)
    assert f'data-reason="{reason}"' in text and logged not in text, text
    assert any(logged in r.getMessage() and r.name == "isvapp.login" for r in caplog.records), caplog.text


def test_a_code_used_twice_is_refused_by_the_idp_and_shown_as_its_refusal(client, tenant, caplog):
    start = client.get("/login/acme")
    cookie = client.get_cookie("isvapp_login", path="/login").value
    location = at_idp(start.headers["Location"])
    assert client.get(callback_path(location)).status_code == 200
    client.set_cookie("isvapp_login", cookie, path="/login")
    again = client.get(callback_path(location))
    assert again.status_code == 502
    shown_and_logged(again, "idp_error", caplog, "Invalid authorization code")


def test_an_idp_error_in_the_callback_is_shown_and_nothing_is_stored(client, app, tenant, caplog):
    client.get("/login/acme")
    state = urllib.parse.parse_qs(urllib.parse.urlsplit(client.get("/login/acme").headers["Location"]).query)["state"][
        0
    ]
    page = client.get(f"/login/callback?error=access_denied&error_description=user+cancelled&state={state}")
    assert page.status_code == 502
    shown_and_logged(page, "idp_error", caplog, "access_denied: user cancelled")
    with app.app_context():
        assert db.session.query(SignedRequest).count() == 0


@pytest.mark.parametrize(
    "switch, value, reason, logged",
    [
        ("FAKE_IDP_TOKEN_GARBAGE", True, "idp_failed", "not JSON"),
        ("FAKE_IDP_TOKEN_FAIL_NEXT", 500, "idp_error", "HTTP 500"),
        ("FAKE_IDP_USERINFO_TENANT", "T-9999", "tenant_mismatch", None),
    ],
)
def test_a_token_endpoint_that_fails_or_a_tenant_that_does_not_match_gives_a_clear_page(
    client, tenant, idp, caplog, switch, value, reason, logged
):
    start = client.get("/login/acme")
    location = at_idp(start.headers["Location"])
    idp.app.config[switch] = value
    page = client.get(callback_path(location))
    assert page.status_code in (403, 502) and "assertion" not in page.get_data(as_text=True)
    if logged:
        shown_and_logged(page, reason, caplog, logged)
    else:
        assert f'data-reason="{reason}"' in page.get_data(as_text=True)


def test_a_token_endpoint_that_does_not_answer_in_time_gives_a_clear_page(client, app, tenant, idp, caplog):
    settings = app.extensions["isvapp"]
    app.extensions["isvapp"] = replace(settings, login=replace(settings.login, idp_timeout_s=0.5))
    start = client.get("/login/acme")
    location = at_idp(start.headers["Location"])
    idp.app.config["FAKE_IDP_DELAY_S"] = 2
    began = time.monotonic()
    page = client.get(callback_path(location))
    assert page.status_code == 502
    shown_and_logged(page, "idp_failed", caplog, "no answer within 0.5 s")
    assert time.monotonic() - began < 2


def test_an_unknown_tenant_and_a_tenant_without_an_app_get_pages(client, app, tenant):
    assert 'data-reason="unknown_tenant"' in client.get("/login/nobody").get_data(as_text=True)
    with app.app_context():
        db.session.query(KitApp).update({"client_id": None})
        db.session.commit()
    assert 'data-reason="no_app"' in client.get("/login/acme").get_data(as_text=True)


def test_a_domain_name_that_is_not_https_is_refused_before_leaving(client, app, tenant, caplog):
    with app.app_context():
        db.session.query(Tenant).update({"domain_name": "http://idp.example.com"})
        db.session.commit()
    page = client.get("/login/acme")
    assert page.status_code == 502
    shown_and_logged(page, "idp_not_allowed", caplog, "is not https")


def test_refresh_hands_off_again_with_the_entitlement_as_it_is_now(client, app, tenant):
    assert log_in(client).status_code == 200
    again = client.get("/login/refresh")
    assert again.status_code == 200 and verify(client, assertion_of(again))["user"]["userName"] == "zhangsan"
    with app.app_context():
        db.session.query(Instance).update({"state": InstanceState.FROZEN})
        db.session.commit()
    frozen = client.get("/login/refresh")
    assert frozen.status_code == 403 and 'data-reason="instance_frozen"' in frozen.get_data(as_text=True)


def logout_token(page):
    return re.search(r'name="token" value="([0-9a-f]+)"', page.get_data(as_text=True)).group(1)


def test_logout_ends_the_session_and_goes_to_the_idps_logout(client, tenant, idp):
    log_in(client)
    confirm = client.get("/logout")  # a link only shows the button
    assert confirm.status_code == 200 and client.get_cookie("isvapp_buyer") is not None
    out = client.post("/logout", data={"token": logout_token(confirm)})
    assert out.status_code == 303 and out.headers["Location"].startswith(idp.url + "/api/v1/logout?redirect_url=")
    assert "isvapp_buyer=;" in out.headers["Set-Cookie"]
    assert client.get("/login/refresh").headers["Location"].endswith("/login")


def test_without_a_hand_off_url_the_signed_in_user_is_told_whom_to_ask(client, app, tenant):
    settings = app.extensions["isvapp"]
    app.extensions["isvapp"] = replace(settings, login=replace(settings.login, handoff_url=None))
    page = log_in(client)
    assert page.status_code == 200 and "assertion" not in page.get_data(as_text=True)
    assert "has not yet set where to go" in page.get_data(as_text=True)


def test_the_key_set_serves_only_the_public_key(client):
    keys = client.get("/.well-known/jwks.json").get_json()["keys"]
    assert [sorted(k) for k in keys] == [["alg", "crv", "kid", "kty", "use", "x"]] and keys[0]["crv"] == "Ed25519"


def test_the_go_live_kit_checklist_counts_a_finished_login(client, app, tenant):
    from isvapp.dashboard import golive

    def login_item():
        with app.app_context():
            (kit,) = [c for c in golive.checklists(load_settings({"GO_LIVE_PRODUCTS": "kit"})) if c.product == "kit"]
            return next(s for s in kit.scenarios if s.key == "login")

    assert login_item().passed_at is None
    log_in(client, user="lisi")  # refused: not a login
    assert login_item().passed_at is None
    log_in(client)
    assert login_item().passed_at is not None


def test_the_tenants_page_shows_the_login_url_the_last_logins_and_sets_the_hand_off_url(client, app, tenant):
    from isvapp.dashboard import security

    from .helpers import PASSWORD, token
    from .helpers import log_in as admin_log_in

    with app.app_context():
        security.set_password("boss", PASSWORD)
        pk = db.session.query(Tenant).one().id
    log_in(client)
    assert admin_log_in(client).status_code == 302
    page = client.get(f"/admin/tenants/{pk}").get_data(as_text=True)
    assert '<code class="login-url">http://localhost/login/acme</code>' in page and CALLBACK in page
    last_logins = re.findall(r'<td class="last-login">([^<]*)</td>', page)
    assert len(last_logins) == 2 and sorted(bool(t) for t in last_logins) == [False, True]
    with app.app_context():
        app_pk = db.session.query(KitApp).one().id
    refused = client.post(
        f"/admin/tenants/{pk}/apps/{app_pk}/handoff",
        data={"handoff_url": "http://app.example.com/sso", "csrf_token": token(page)},
    )
    assert refused.headers["Location"].endswith("bad=handoff")
    with app.app_context():
        assert db.session.query(KitApp).one().handoff_url is None
    client.post(
        f"/admin/tenants/{pk}/apps/{app_pk}/handoff",
        data={"handoff_url": "https://other.example.com/in", "csrf_token": token(page)},
    )
    page = log_in(client)
    assert 'action="https://other.example.com/in"' in page.get_data(as_text=True)  # the app's own wins


def workbench_code(idp):
    """What the aPaaS workbench does: the user signs in there, the IdP sends a code for our callback."""
    query = urllib.parse.urlencode(
        {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": CALLBACK, "scope": "get_user_info"}
    )
    location = at_idp(f"{idp.url}/api/v1/oauth2/authorize?{query}")
    return urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["code"][0]


def test_a_login_the_workbench_began_is_refused_by_default(client, tenant, idp):
    page = client.get(f"/login/callback?code={workbench_code(idp)}&tenant_id=T-0001")
    assert page.status_code == 400 and 'data-reason="no_login"' in page.get_data(as_text=True)


@pytest.mark.parametrize(
    "app_config",
    [
        {
            "LOGIN_HANDOFF_URL": HANDOFF,
            "LOGIN_REDIRECT_URI": CALLBACK,
            "LOGIN_WORKBENCH": True,
            "LOGIN_ALLOW_LOOPBACK_IDP": True,
        }
    ],
)
def test_with_login_workbench_on_a_login_the_workbench_began_is_handed_off(client, tenant, idp):
    page = client.get(f"/login/callback?code={workbench_code(idp)}&tenant_id=T-0001")
    assert page.status_code == 200 and verify(client, assertion_of(page))["sub"] == "T-0001/zhangsan"
    other_tenant = client.get(f"/login/callback?code={workbench_code(idp)}&tenant_id=T-9999")
    assert 'data-reason="unknown_tenant"' in other_tenant.get_data(as_text=True)


def test_an_expired_code_gives_a_clear_page_and_nothing_is_stored(client, app, tenant, idp, caplog):
    idp.app.config["FAKE_IDP_CODE_TTL_S"] = 0  # every code has expired by the time it is exchanged
    page = log_in(client)
    assert page.status_code == 502
    shown_and_logged(page, "idp_error", caplog, "Invalid authorization code")
    with app.app_context():
        assert db.session.query(SignedRequest).count() == 0
        assert all(u.last_login_at is None for u in db.session.query(KitUser))


def test_with_the_issuer_unpinned_only_a_login_from_this_host_may_start(app, client, tenant, caplog):
    """LOGIN_ISSUER unset: the assertion's issuer would come from the Host header, which a visitor
    chooses. A developer on this host may do that; a visitor from anywhere else is refused."""
    elsewhere = {"REMOTE_ADDR": "203.0.113.9"}
    page = client.get("/login/acme", environ_base=elsewhere)
    assert page.status_code == 503
    shown_and_logged(page, "not_configured", caplog, "LOGIN_ISSUER is not set")
    assert client.get("/login/acme").status_code == 302  # from 127.0.0.1
    settings = app.extensions["isvapp"]
    app.extensions["isvapp"] = replace(settings, login=replace(settings.login, issuer="https://isv.example.com"))
    assert client.get("/login/acme", environ_base=elsewhere).status_code == 302


def test_an_idp_name_that_resolves_to_this_host_is_refused_when_connecting(idp):
    """The host name passed base_url's checks, but the address it reached is this host's (a name
    pointed at 127.0.0.1 by its owner): the connection is refused before anything is sent."""
    from isvapp import outbound
    from isvapp.market import idp as idp_client

    before = len(idp.app.extensions["fake_idp"].calls)
    client = idp_client.Client(idp.url, CLIENT_ID, CLIENT_SECRET, CALLBACK, 5.0, allow_loopback=False)
    with pytest.raises(idp_client.IdpError, match="is not a public address") as refused:
        idp_client.exchange_code(client, "a-code")
    assert refused.value.kind == "network"
    assert len(idp.app.extensions["fake_idp"].calls) == before  # no request reached it
    assert outbound.is_public_address("8.8.8.8") and not outbound.is_public_address("::ffff:10.0.0.1")
    assert not outbound.is_public_address("169.254.169.254") and outbound.is_public_address("::1", allow_loopback=True)


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000])
def test_an_idp_answer_nested_too_deeply_is_garbage_not_a_crash(body):
    from isvapp.market import idp as idp_client

    with pytest.raises(idp_client.IdpError, match="nested too deeply") as refused:
        idp_client._json(200, body, "the IdP's token endpoint")
    assert refused.value.kind == "garbage"
