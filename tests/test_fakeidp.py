"""The fake tenant IdP (isvapp.standins.fakeidp): its parts alone (the directory's rules, the codes
and tokens it hands out), then the app over real HTTP on 127.0.0.1."""

import base64
import hashlib
import secrets
import time
from urllib.parse import parse_qs, urlsplit

import isvapp.settings
import pytest
import requests
from isvapp.extensions import db
from isvapp.standins.fakeidp import DEFAULT_REDIRECT_URI, clients_and_users, create_fake_idp, fake_idp_command
from isvapp.standins.fakeidp.directory import Directory, s256, verifier_matches
from isvapp.standins.fakeidp.state import IdpState
from isvapp.standins.serving import Running
from isvapp.storage import vault
from isvapp.storage.models import KitApp, KitState, KitUser

from .tiers import live_fixture

# The fake IdP is a development stand-in holding its state in memory; its two reads of KitApp and
# KitUser rows are plain ORM queries, which the login's tests run on both databases.
pytestmark = pytest.mark.any_database

CALLBACK = "http://127.0.0.1:8000/login/callback"
CLIENTS = {
    "client-1": {"secret": "s3cret", "redirect_uris": [CALLBACK, "https://isv.example.com/cb?x=1"]},
    "client-2": {"secret": "other", "redirect_uris": ["http://127.0.0.1:8000/other"]},
}
USERS = {
    "zhangsan": {
        "name": "张三",
        "tenant": "34a59a26e6a24071a9cc7a0526440171",
        "organizationCode": "10000",
        "role": "user",
    },
    "boss": {"name": "Boss", "tenant": "t-2", "organizationCode": "1", "role": "admin", "password": "own"},
}


def challenge_of(verifier):
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


# --- the parts ------------------------------------------------------------------------------------

DIRECTORY = Directory(CLIENTS, USERS)


def authorize_query(**extra):
    return {
        "response_type": "code",
        "client_id": "client-1",
        "redirect_uri": CALLBACK,
        "scope": "get_user_info",
        "state": "",
        "code_challenge": "",
        "code_challenge_method": "",
        **extra,
    }


@pytest.mark.parametrize(
    "extra, problem",
    [
        ({}, None),
        ({"client_id": "nobody"}, "unknown client_id"),
        ({"redirect_uri": "http://127.0.0.1:8000/other"}, "redirect_uri is not one registered for this client"),
        ({"response_type": "token"}, "response_type must be code"),
        ({"code_challenge": "x" * 43, "code_challenge_method": "plain"}, "code_challenge_method must be S256"),
        (
            {"code_challenge": "short", "code_challenge_method": "S256"},
            "code_challenge must be 43 base64url characters",
        ),
    ],
)
def test_the_directory_says_why_an_authorize_request_is_refused(extra, problem):
    assert DIRECTORY.authorize_problem(authorize_query(**extra)) == problem


def test_a_user_logs_in_with_its_own_password_or_else_the_shared_one():
    assert DIRECTORY.password_ok("zhangsan", "fake-password") and not DIRECTORY.password_ok("zhangsan", "own")
    assert DIRECTORY.password_ok("boss", "own") and not DIRECTORY.password_ok("boss", "fake-password")
    assert not DIRECTORY.password_ok("nobody", "fake-password")


def test_a_client_needs_its_secret_and_a_client_without_one_never_passes():
    assert DIRECTORY.client_ok("client-1", "s3cret") and not DIRECTORY.client_ok("client-1", "other")
    assert not Directory({"c": {"secret": "", "redirect_uris": []}}, {}).client_ok("c", "")
    assert not DIRECTORY.client_ok("nobody", "s3cret")


def test_the_directory_redirects_a_logout_only_to_loopback_or_a_registered_host():
    assert DIRECTORY.safe_redirect("https://isv.example.com/after")
    assert DIRECTORY.safe_redirect("http://localhost:9/bye")
    assert not DIRECTORY.safe_redirect("https://evil.example.com/")
    assert not DIRECTORY.safe_redirect("http://127.0.0.1\\@evil.example.com/")
    assert not DIRECTORY.safe_redirect("")


def test_a_pkce_verifier_matches_only_its_challenge_and_only_at_43_to_128_characters():
    verifier = "v" * 43
    assert s256(verifier) == challenge_of(verifier) and verifier_matches(verifier, s256(verifier))
    assert not verifier_matches("w" * 43, s256(verifier))
    assert not verifier_matches("v" * 42, s256("v" * 42)) and not verifier_matches("v" * 129, s256("v" * 129))


def test_a_code_is_taken_once_by_its_own_client_before_it_expires():
    state = IdpState()
    code = state.new_code(authorize_query(), "zhangsan", ttl_s=60, now=1000.0)
    assert state.take("codes", code, "client-2", now=1001.0) is None  # another client's: left where it is
    grant = state.take("codes", code, "client-1", now=1001.0)
    assert grant["user"] == "zhangsan" and grant["challenge"] is None
    assert state.take("codes", code, "client-1", now=1001.0) is None  # single use
    late = state.new_code(authorize_query(), "zhangsan", ttl_s=60, now=1000.0)
    assert state.take("codes", late, "client-1", now=1060.0) is None and state.codes == {}


def test_tokens_expire_and_a_refresh_token_is_single_use():
    state = IdpState()
    access, refresh = state.issue("client-1", "boss", "get_user_info", 10, 100, now=50.0)
    assert state.access_grant(access, now=59.0)["user"] == "boss" and state.access_grant(access, now=60.0) is None
    assert state.take("refresh", refresh, "client-1", now=149.0)["scope"] == "get_user_info"
    assert state.take("refresh", refresh, "client-1", now=149.0) is None


def test_a_session_is_remembered_until_it_ends():
    state = IdpState()
    sid = state.start_session("zhangsan")
    assert state.session_user(sid) == "zhangsan"
    state.end_session(sid)
    state.end_session(sid)  # a second logout is harmless
    assert state.session_user(sid) is None


# --- the app, over HTTP ---------------------------------------------------------------------------


@live_fixture
def idp():
    with Running(create_fake_idp(CLIENTS, USERS)) as running:
        yield running


def authorize_params(**extra):
    return {"response_type": "code", "client_id": "client-1", "redirect_uri": CALLBACK, "state": "abc123", **extra}


def login(idp, session=None, user="zhangsan", password="fake-password", **extra):
    """GET the login page, POST it back with the user's password; the 302 answer."""
    http = session or requests.Session()
    page = http.get(idp.url + "/api/v1/oauth2/authorize", params=authorize_params(**extra), allow_redirects=False)
    assert page.status_code == 200 and "<form" in page.text
    return http.post(
        idp.url + "/api/v1/oauth2/authorize",
        data={**authorize_params(**extra), "userName": user, "password": password},
        allow_redirects=False,
    )


def code_from(answer):
    assert answer.status_code == 302, answer.text
    return parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]


def token(idp, **form):
    body = {"grant_type": "authorization_code", "client_id": "client-1", "client_secret": "s3cret", **form}
    return requests.post(idp.url + "/api/v1/oauth2/token", data=body, allow_redirects=False)


def userinfo(idp, access):
    return requests.get(
        idp.url + "/api/v1/oauth2/userinfo",
        allow_redirects=False,
        headers={"Authorization": f"Bearer {access}", "Accept": "application/json"},
    )


def test_code_flow_with_pkce_then_userinfo(idp):
    verifier = secrets.token_urlsafe(48)
    answer = login(idp, code_challenge=challenge_of(verifier), code_challenge_method="S256")
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    assert parse_qs(location.query)["state"] == ["abc123"]
    got = token(idp, code=code_from(answer), redirect_uri=CALLBACK, code_verifier=verifier)
    assert got.status_code == 200 and got.headers["Cache-Control"] == "no-store"
    body = got.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 7200 and body["scope"] == "get_user_info"
    assert body["access_token"] and body["refresh_token"]
    info = userinfo(idp, body["access_token"])
    assert info.status_code == 200
    assert info.json() == {
        "userName": "zhangsan",
        "name": "张三",
        "tenant": "34a59a26e6a24071a9cc7a0526440171",
        "organizationCode": "10000",
        "role": "user",
    }
    assert ("POST", "/api/v1/oauth2/token") in idp.app.extensions["fake_idp"].calls


def test_state_is_left_out_when_not_given_and_the_uri_query_is_kept(idp):
    http = requests.Session()
    params = {"response_type": "code", "client_id": "client-1", "redirect_uri": "https://isv.example.com/cb?x=1"}
    answer = http.post(
        idp.url + "/api/v1/oauth2/authorize",
        data={**params, "userName": "boss", "password": "own"},
        allow_redirects=False,
    )
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert query["x"] == ["1"] and "state" not in query and query["code"]


def test_state_is_url_encoded(idp):
    answer = login(idp, state="a b&c=d")
    assert parse_qs(urlsplit(answer.headers["Location"]).query)["state"] == ["a b&c=d"]


def test_wrong_password_shows_the_form_again(idp):
    answer = login(idp, password="nope")
    assert answer.status_code == 200 and "Location" not in answer.headers and "Wrong" in answer.text
    assert login(idp, user="boss", password="fake-password").status_code == 200  # boss has a password of its own
    assert login(idp, user="nobody").status_code == 200


def test_idp_session_cookie_redirects_at_once_until_logout(idp):
    http = requests.Session()
    code_from(login(idp, session=http))
    again = http.get(idp.url + "/api/v1/oauth2/authorize", params=authorize_params(), allow_redirects=False)
    assert token(idp, code=code_from(again)).status_code == 200
    out = http.get(idp.url + "/api/v1/logout", allow_redirects=False)
    assert out.status_code == 200 and "Location" not in out.headers
    after = http.get(idp.url + "/api/v1/oauth2/authorize", params=authorize_params(), allow_redirects=False)
    assert after.status_code == 200 and "<form" in after.text


def test_refresh_rotates_and_the_old_refresh_token_is_refused(idp):
    first = token(idp, code=code_from(login(idp))).json()
    renewed = token(idp, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert renewed.status_code == 200
    body = renewed.json()
    assert body["refresh_token"] != first["refresh_token"] and body["access_token"] != first["access_token"]
    assert userinfo(idp, body["access_token"]).json()["userName"] == "zhangsan"
    old = token(idp, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert old.status_code == 400
    assert old.json() == {"error": "invalid_grant", "error_description": "Invalid refresh token"}
    other_client = token(
        idp,
        grant_type="refresh_token",
        refresh_token=body["refresh_token"],
        client_id="client-2",
        client_secret="other",
    )
    assert other_client.status_code == 400


def test_code_is_single_use(idp):
    code = code_from(login(idp))
    assert token(idp, code=code).status_code == 200
    reused = token(idp, code=code)
    assert reused.status_code == 400
    assert reused.json() == {"error": "invalid_grant", "error_description": "Invalid authorization code"}
    assert reused.text == '{\n"error" : "invalid_grant",\n"error_description" : "Invalid authorization code"\n}'


def test_expired_code_is_refused(idp):
    idp.app.config["FAKE_IDP_CODE_TTL_S"] = 0
    code = code_from(login(idp))
    time.sleep(0.01)
    assert token(idp, code=code).json()["error"] == "invalid_grant"


def test_code_of_another_client_or_redirect_uri_is_refused(idp):
    code = code_from(login(idp))
    assert token(idp, code=code, client_id="client-2", client_secret="other").status_code == 400
    assert token(idp, code=code, redirect_uri="http://127.0.0.1:8000/other").status_code == 400


@pytest.mark.parametrize(
    "params",
    [
        {"redirect_uri": "http://evil.example.com/cb"},
        {"redirect_uri": CALLBACK + "/"},
        {"client_id": "unknown"},
        {"response_type": "token"},
        {"code_challenge": "x" * 43, "code_challenge_method": "plain"},
        {"code_challenge": "x" * 43},
    ],
)
def test_bad_authorize_is_a_page_never_a_redirect(idp, params):
    for send in (
        lambda: requests.get(
            idp.url + "/api/v1/oauth2/authorize", params=authorize_params(**params), allow_redirects=False
        ),
        lambda: requests.post(
            idp.url + "/api/v1/oauth2/authorize",
            allow_redirects=False,
            data={**authorize_params(**params), "userName": "zhangsan", "password": "fake-password"},
        ),
    ):
        answer = send()
        assert answer.status_code == 400 and "Location" not in answer.headers


def test_wrong_client_secret_is_401(idp):
    code = code_from(login(idp))
    answer = token(idp, code=code, client_secret="wrong")
    assert answer.status_code == 401
    assert answer.json() == {"error": "invalid_client", "error_description": "Bad client credentials"}
    missing = requests.post(
        idp.url + "/api/v1/oauth2/token",
        allow_redirects=False,
        data={"grant_type": "authorization_code", "client_id": "client-1", "code": code},
    )
    assert missing.status_code == 401
    assert token(idp, code=code).status_code == 200  # a refused client did not use the code up


def test_wrong_or_missing_verifier_is_refused(idp):
    verifier = secrets.token_urlsafe(48)
    pkce = {"code_challenge": challenge_of(verifier), "code_challenge_method": "S256"}
    wrong = token(idp, code=code_from(login(idp, **pkce)), code_verifier=secrets.token_urlsafe(48))
    assert wrong.status_code == 400 and wrong.json()["error_description"] == "Invalid authorization code"
    assert token(idp, code=code_from(login(idp, **pkce))).status_code == 400


def test_token_needs_a_form_and_a_known_grant_type(idp):
    as_json = requests.post(
        idp.url + "/api/v1/oauth2/token",
        allow_redirects=False,
        json={"grant_type": "authorization_code", "client_id": "client-1", "client_secret": "s3cret"},
    )
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"
    other = token(idp, grant_type="client_credentials")
    assert other.status_code == 400 and other.json()["error"] == "unsupported_grant_type"


def test_userinfo_without_a_good_token_is_401(idp):
    expected = {"error": "unauthorized", "error_description": "Full authentication is required to access this resource"}
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        answer = requests.get(idp.url + "/api/v1/oauth2/userinfo", headers=headers, allow_redirects=False)
        assert answer.status_code == 401 and answer.json() == expected
    idp.app.config["FAKE_IDP_TOKEN_TTL_S"] = 0
    access = token(idp, code=code_from(login(idp))).json()["access_token"]
    time.sleep(0.01)
    assert userinfo(idp, access).status_code == 401


def test_fail_next_answers_once_then_resets(idp):
    code = code_from(login(idp))
    idp.app.config["FAKE_IDP_TOKEN_FAIL_NEXT"] = 503
    failed = token(idp, code=code)
    assert failed.status_code == 503 and failed.json()["error"] == "server_error"
    assert idp.app.config["FAKE_IDP_TOKEN_FAIL_NEXT"] is None
    assert token(idp, code=code).status_code == 200  # the failed call did not use the code up


def test_garbage_answers_200_html(idp):
    idp.app.config["FAKE_IDP_TOKEN_GARBAGE"] = True
    answer = token(idp, code=code_from(login(idp)))
    assert answer.status_code == 200 and answer.text == "<html>oops</html>"
    with pytest.raises(ValueError):
        answer.json()


def test_delay_slows_token_and_userinfo(idp):
    access = token(idp, code=code_from(login(idp))).json()["access_token"]
    idp.app.config["FAKE_IDP_DELAY_S"] = 0.3
    started = time.monotonic()
    assert userinfo(idp, access).status_code == 200
    assert time.monotonic() - started >= 0.3
    with pytest.raises(requests.Timeout):
        requests.post(idp.url + "/api/v1/oauth2/token", data={"grant_type": "refresh_token"}, timeout=0.1)


def test_userinfo_tenant_override(idp):
    access = token(idp, code=code_from(login(idp))).json()["access_token"]
    idp.app.config["FAKE_IDP_USERINFO_TENANT"] = "someone-else"
    assert userinfo(idp, access).json()["tenant"] == "someone-else"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/bye",
        "http://localhost/bye?x=1",
        "https://isv.example.com/after",
        " https://isv.example.com/after",
    ],
)
def test_logout_redirects_to_loopback_or_a_registered_host(idp, url):
    answer = requests.get(idp.url + "/api/v1/logout", params={"redirect_url": url}, allow_redirects=False)
    assert answer.status_code == 302 and answer.headers["Location"] == url.strip()


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.com/",
        "//evil.example.com/",
        "javascript:alert(1)",
        "http://127.0.0.1@evil.example.com/",
        "http://127.0.0.1\\@evil.example.com/",
        "ftp://127.0.0.1/",
    ],
)
def test_logout_refuses_a_foreign_redirect(idp, url):
    answer = requests.get(idp.url + "/api/v1/logout", params={"redirect_url": url}, allow_redirects=False)
    assert answer.status_code == 200 and "Location" not in answer.headers and "Logged out" in answer.text


@pytest.mark.live
def test_clients_and_users_come_from_the_database(app):
    app.config["LOGIN_REDIRECT_URI"] = "https://isv.example.com/login/callback"
    isvapp.settings.init_app(app)  # read once per app: read them again
    with app.app_context():
        keys = {"instance_key": "i-1", "tenant_id": "tenant-1"}
        db.session.add_all(
            [
                KitApp(
                    **keys, app_id="a-1", client_id="cid-1", client_secret_sealed=vault.seal("test-secret", "plain-1")
                ),
                KitApp(**keys, app_id="a-2", client_id=None, client_secret_sealed=vault.seal("test-secret", "x")),
                KitUser(**keys, app_id="a-1", user_name="zhangsan", name="张三", org_code="10000", role=None),
                KitUser(**keys, app_id="a-1", user_name="admin1", name="Admin", org_code="1", role="admin"),
                KitUser(**keys, app_id="a-1", user_name="gone", state=KitState.REVOKED),
            ]
        )
        db.session.commit()
        clients, users = clients_and_users()
    assert clients == {"cid-1": {"secret": "plain-1", "redirect_uris": ["https://isv.example.com/login/callback"]}}
    assert users == {
        "zhangsan": {"name": "张三", "tenant": "tenant-1", "organizationCode": "10000", "role": "user"},
        "admin1": {"name": "Admin", "tenant": "tenant-1", "organizationCode": "1", "role": "admin"},
    }
    with Running(create_fake_idp(clients, users)) as idp:
        http = requests.Session()
        params = {
            "response_type": "code",
            "client_id": "cid-1",
            "redirect_uri": "https://isv.example.com/login/callback",
        }
        answer = http.post(
            idp.url + "/api/v1/oauth2/authorize",
            allow_redirects=False,
            data={**params, "userName": "admin1", "password": "fake-password"},
        )
        got = token(idp, code=code_from(answer), client_id="cid-1", client_secret="plain-1")
        assert userinfo(idp, got.json()["access_token"]).json()["role"] == "admin"


def test_default_redirect_uri_and_the_command_is_the_clis_not_the_apps(app):
    with app.app_context():
        db.session.add(
            KitApp(
                instance_key="",
                tenant_id="t",
                app_id="a",
                client_id="c",
                client_secret_sealed=vault.seal("test-secret", "s"),
            )
        )
        db.session.commit()
        clients, _ = clients_and_users()
    assert clients["c"]["redirect_uris"] == [DEFAULT_REDIRECT_URI]
    assert "fake-idp" not in app.cli.commands  # the command line's (setup.cfg flask.commands), not the app's
    result = app.test_cli_runner().invoke(fake_idp_command, ["--help"])
    assert result.exit_code == 0 and "--password" in result.output
